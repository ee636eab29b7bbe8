"""distributed/: the preset builder (strategies.py) and the FSDP2 wrapper (fsdp2.py) share their options and the
block lookup through options.py, so neither imports the other (there was a cycle: fsdp2 -> strategies -> fsdp2)."""
from __future__ import annotations

import ast
from pathlib import Path

import lit_diffusion.distributed as distributed

FOLDER = Path(distributed.__file__).parent


def _imported_modules(name: str) -> set[str]:
    """Every lit_diffusion module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse((FOLDER / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("lit_diffusion.")}


def test_fsdp2_and_strategies_do_not_import_each_other_both_use_options():
    strategies, fsdp2 = _imported_modules("strategies"), _imported_modules("fsdp2")
    assert "lit_diffusion.distributed.strategies" not in fsdp2
    assert "lit_diffusion.distributed.options" in fsdp2 and "lit_diffusion.distributed.options" in strategies
    assert not {m for m in _imported_modules("options") if m.startswith("lit_diffusion.distributed")}


def test_the_options_keep_their_old_import_paths():
    from lit_diffusion.distributed import StrategyOptions
    from lit_diffusion.distributed.options import StrategyOptions as moved, block_class_of
    from lit_diffusion.distributed.strategies import StrategyOptions as old, block_class_of as old_block

    assert StrategyOptions is moved is old and block_class_of is old_block
