"""The throughput benchmark runs end to end on the CPU and prints its command and a complete table."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "backbone_throughput.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("backbone_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_command_and_table(capsys):
    bench = load_benchmark()
    bench.main(["--presets", "dit:debug,unet:debug", "--batch-sizes", "2", "--precisions", "fp32,bf16-mixed",
                "--steps", "1", "--warmup", "1", "--device", "cpu", "--dit-shape", "3,8,8", "--unet-shape", "1,8,8",
                "--activation-checkpointing"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# command: python ") and "--presets dit:debug,unet:debug" in lines[0]
    rows = [line for line in lines if line.startswith("| dit:") or line.startswith("| unet:")]
    assert len(rows) == 4 and all(len(row.split("|")) == 14 for row in rows)
    train, forward = float(rows[0].split("|")[10]), float(rows[0].split("|")[9])
    assert train == pytest.approx(3 * forward, rel=0.05)  # model FLOPs: recomputation is not counted


def test_benchmark_rejects_unknown_preset():
    with pytest.raises(SystemExit):
        load_benchmark().parse_args(["--presets", "dit:huge"])


@pytest.mark.slow
def test_gpu_acceptance_tiny_runs_every_section_on_the_cpu(tmp_path):
    """benchmarks/gpu_acceptance.py --tiny: every section on toy sizes, so the GPU script never rots. It runs
    in a subprocess: its FSDP2 section starts a 1-rank gloo process group, which must not leak into pytest."""
    import json
    import subprocess
    import sys

    script = SCRIPT.with_name("gpu_acceptance.py")
    done = subprocess.run([sys.executable, str(script), "--tiny", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "acceptance.json").read_text())
    for section in ("train", "no_sync", "sharded", "resume", "sampling", "loader", "lightning"):
        assert section in results and "error" not in results[section], section
    assert results["resume"]["bitwise"] is True  # float32 on the CPU: exact
    assert results["no_sync"]["host_reads_in_3_steps"] == 0
    # the DeepSpeed measurement's path (`lit-diffusion fit` in a child, step time from its checkpoint) with the
    # strategy Lightning allows on the CPU
    fit = results["sharded"]["fit, auto strategy (CPU stand-in for DeepSpeed)"]
    assert fit["steps"] == 4 and fit["step_ms"] > 0 and fit["peak_memory_gib"] == 0
    assert "| train | DiT-debug |" in (tmp_path / "acceptance.md").read_text()
