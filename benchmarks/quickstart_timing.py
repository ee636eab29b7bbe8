"""Time the README's main job as a newcomer runs it: the repository's tracked files copied to a fresh folder
(no shards, no runs, no caches: what a fresh clone has), then `lit-diffusion compare -c
experiments/compare/quickstart.yaml` there, optionally with one CPU-bound process beside it all the way.

    python benchmarks/quickstart_timing.py                # alone
    python benchmarks/quickstart_timing.py --burner       # with `python -c 'while True: pass'` beside it

Prints the machine (CPU model, cores, load average before and after), the per-phase table the comparison logs
at its end (wall time, and CPU time of the comparison and of its training children), the total wall and CPU
time, the FD figures of the report's table, and the command. OMP_NUM_THREADS is left out of the job's
environment, as in a newcomer's shell. Install time is not counted."""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["-m", "lit_diffusion.cli", "compare", "-c", "experiments/compare/quickstart.yaml"]


def fresh_copy(to: Path) -> None:
    """The tracked files of this checkout (with their working-tree contents), as a fresh clone would have them."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (to / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name.decode())


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burner", action="store_true", help="one CPU-bound process beside the job, all the way")
    parser.add_argument("--keep", type=Path, default=None, help="run in this (new) folder and keep it")
    a = parser.parse_args(argv)
    work = a.keep or Path(tempfile.mkdtemp(prefix="quickstart-"))
    work.mkdir(parents=True, exist_ok=a.keep is None)
    fresh_copy(work)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"PYTHONPATH": str(work),
                                                                              "PYTHONUNBUFFERED": "1"}
    print(f"{cpu_model()}, {os.cpu_count()} cores; load average before {os.getloadavg()[0]:.2f}; "
          f"{'one CPU-bound process beside it' if a.burner else 'alone'}; in {work}", flush=True)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.burner else None
    log = work / "quickstart.log"
    start = time.perf_counter()
    try:
        with open(log, "w") as out:
            code = subprocess.run([sys.executable, *COMMAND], cwd=work, env=env, stdout=out,
                                  stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - start
        used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the job and its children (the burner is not reaped yet)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    text = log.read_text()
    print("\n".join(line for line in text.splitlines() if line.startswith(("[phases]", "[done]"))))
    print(f"total: {wall:.0f} s wall ({wall / 60:.1f} min), {used.ru_utime + used.ru_stime:.0f} s CPU (the job and "
          f"its children); exit status {code}; load average after {os.getloadavg()[0]:.2f}; log {log}")
    print("FD of each setting (RUN/eval.json):")
    for cache in sorted((work / "runs/compare/quickstart/runs").glob("*/eval.json")):
        scores = json.loads(cache.read_text())
        print(f"  {cache.parent.name}: " + ", ".join(f"{k.rsplit('/', 1)[0]} {v['fd']:.3f}" for k, v in scores.items()))
    print("python benchmarks/quickstart_timing.py" + (" --burner" if a.burner else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
