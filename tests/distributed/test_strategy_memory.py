"""benchmarks/strategy_memory.py: the per-rank bytes of parameters, gradients, optimiser state and EMA that 2
CPU ranks really hold under DDP, FSDP2, ZeRO-2 and ZeRO-3 equal the analytic bytes (up to ZeRO's padding)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import strategy_memory  # noqa: E402


@pytest.mark.slow
def test_measured_bytes_per_rank_equal_the_analytic_bytes():
    chosen = strategy_memory.STRATEGIES if importlib.util.find_spec("deepspeed") else ("DDP", "FSDP2")
    args = strategy_memory.parser().parse_args(["--world-size", "2", "--strategies", *chosen])
    measured, n = strategy_memory.run(args)
    print(strategy_memory.table(measured, n, 2))
    for strategy, parts in measured.items():
        assert "error" not in parts, parts
        want = strategy_memory.analytic(strategy, n, 2)
        for part in strategy_memory.PARTS:
            # ZeRO pads each partition to a multiple of the world size: a few elements per tensor at most
            assert abs(parts[part] - want[part]) <= 1e-3 * want[part], (strategy, part, parts[part], want[part])
    sharded = {s: sum(measured[s].values()) for s in measured}
    assert sharded["FSDP2"] < sharded["DDP"]
    if "ZeRO-3" in sharded:
        assert sharded["ZeRO-3"] < sharded["ZeRO-2"] < sharded["DDP"]
