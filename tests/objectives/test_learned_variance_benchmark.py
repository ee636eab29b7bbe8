"""benchmarks/learned_variance_toy2d.py on a tiny budget, so the script that measures the README's table never rots."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "learned_variance_toy2d.py"


def test_benchmark_runs_and_prints_every_row():
    out = subprocess.run([sys.executable, str(SCRIPT), "--chains", "50", "--exact-mean", "--steps", "3", "--width", "16",
                          "--depth", "1", "--n-eval", "200", "--eval-seeds", "1"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line for line in out.splitlines() if "SW2" in line]
    assert len(rows) == 7 and sum("learned variance" in r for r in rows) == 2, out
