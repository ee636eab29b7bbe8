"""Counts that say whether each concept has one owner (issue 26), printed with the rule behind each count.

    python benchmarks/house_counts.py

Import cycles, upward imports and private members across folders come from the rules of
tests/test_architecture.py (the same functions); the rest are text searches over lit_diffusion/, so a count is a
place to look, and the lines are printed with --show."""
from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lit_diffusion"

# text patterns of a concept that should be decided in one place
SEARCHES = {
    "files that call torch.load (checkpoints, caches, imported weights)": r"torch\.load\(",
    "files that detect the process rank": r"get_rank\(\)|\"RANK\"|'RANK'|SLURM_PROCID|\"LOCAL_RANK\"",
    "files that decide whether the image/time budget is reached": r"images_seen\s*>=\s*\S*max_images|0\.98\s*\*",
    "files that write the seed stride 1_000_003 (generation/noise.py defines it)": r"1_000_003",
}


def _architecture():
    spec = importlib.util.spec_from_file_location("architecture", REPO / "tests" / "test_architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _long_functions(limit: int) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    return found


def _long_files(limit: int) -> list[str]:
    return [f"{p.relative_to(REPO)} ({n})" for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > limit]


def _search(pattern: str) -> list[str]:
    return [f"{p.relative_to(REPO)}:{i}" for p in sorted(PACKAGE.rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(pattern, line) and not line.lstrip().startswith("#")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print the places behind each count")
    show = parser.parse_args().show
    arch = _architecture()
    rows = {"modules": [str(m) for m in arch.MODULES],
            "import cycles (strongly connected modules)": [" <-> ".join(c) for c in arch.import_cycles(arch.import_graph())]}
    upward = []
    for unit in sorted(arch.ALLOWED):
        for module in arch.modules_of({unit}):
            upward += [arch.where(module, i) for i in arch.package_imports(module)
                       if arch.unit_of(i.target) not in arch.ALLOWED[unit] | {unit, arch.ROOT}]
    for unit in sorted(arch.TOP):
        for module in arch.modules_of({unit}):
            upward += [arch.where(module, i) for i in arch.package_imports(module)
                       if arch.unit_of(i.target) in arch.TOP - {unit} - arch.TOP_ALLOWED[unit]]
    rows["upward imports"] = upward
    rows["private members used across folders"] = [b for m in arch.MODULES for b in arch.private_uses_across_folders(m)]
    rows["functions over 60 lines"] = _long_functions(60)
    rows["files over 300 lines"] = _long_files(300)
    for name, pattern in SEARCHES.items():
        places = _search(pattern)
        rows[name] = sorted({p.split(":")[0] for p in places})
    for name, places in rows.items():
        print(f"{len(places):5d}  {name}")
        if show and name != "modules":
            print("".join(f"         {p}\n" for p in places), end="")


if __name__ == "__main__":
    main()
