"""DESIGN.md §1: the dependency direction between the folders of lit_diffusion, checked on the import
statements of every module (absolute and relative imports, at module level and inside functions).

A "unit" is a folder of lit_diffusion, or a top-level module (`cli.py`, `contract.py`) standing as its
own folder. The package root `lit_diffusion/__init__.py` holds only the version and may be imported by
anyone. Three rules:
  1. direction: a unit imports only itself and the units ALLOWED lists for it;
  2. nothing below `training` imports `training` or the layers on top of it;
  3. no Lightning / W&B in the pure layers, neither imported directly nor reached through a chain of
     lit_diffusion imports (a -> b -> lightning), since importing a fails just the same.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lit_diffusion"
PACKAGE = PACKAGE_DIR.name
ROOT = ""  # the unit of lit_diffusion/__init__.py
TOP = {"compare", "launch", "commands", "cli", "published"}  # may import anything (published writes training checkpoints)

# unit -> lit_diffusion units it may import besides itself (and the package root)
# distributed sits just above the pure floors: its `process` module (which rank am I, on which device) is
# torch-only and is read by data, generation, evaluation, runs and training, so distributed itself may import
# none of those (that would be a cycle); its package __init__ imports nothing, so reaching `process` from a
# Lightning-free folder does not pull in the Lightning strategies beside it (the chain rule checks this)
_DISTRIBUTED = {"contract", "objectives", "samplers", "backbones"}
_EVALUATION = {"contract", "objectives", "samplers", "backbones", "data", "generation", "distributed"}
BELOW_TRAINING = {
    "contract": set(),
    "typed_cli": set(),
    "stop_signals": set(),  # Ctrl-C and SIGTERM as one exception: the data writers and the commands that stop cleanly  # a typed function <-> argv (jsonargparse): the commands' parser, and compare's for `build:`
    "samplers": {"contract"},
    "backbones": set(),
    "objectives": {"contract", "samplers"},
    "distributed": _DISTRIBUTED,
    "data": {"contract", "objectives", "distributed", "stop_signals"},
    # generation opens autoencoder checkpoints through runs' one door (open_checkpoint), so runs sits below it
    "generation": {"contract", "objectives", "samplers", "backbones", "data", "distributed", "runs"},
    "evaluation": _EVALUATION,
    "runs": {"contract", "objectives", "samplers", "backbones", "data", "distributed"},  # a run's lifecycle
}
ALLOWED = {**BELOW_TRAINING, "training": _EVALUATION | {"evaluation", "runs"}}

FORBIDDEN = ("lightning", "pytorch_lightning", "wandb")
# data/datamodule.py is the LightningDataModule, so data itself is not Lightning-free (nor runs,
# distributed, training and the top); a Lightning-free folder importing it fails through the chain rule,
# as it would importing distributed's strategies (distributed.process alone is Lightning-free)
LIGHTNING_FREE = ("contract", "typed_cli", "stop_signals", "samplers", "backbones", "objectives", "generation", "evaluation")


@dataclass(frozen=True)
class Import:
    target: str  # absolute module name, e.g. "lightning.pytorch" or "lit_diffusion.data.datamodule"
    line: int
    runs: bool  # False under `if TYPE_CHECKING:` (never executed); imports inside functions do run


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "__pycache__" not in p.parts}


MODULES = all_modules()


def unit_of(module: str) -> str:
    """lit_diffusion.data.stream -> "data"; lit_diffusion.cli -> "cli"; lit_diffusion -> ROOT."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names of `from <...> import names`: relative levels resolved against the importing
    module's package; `from . import x` names the submodule x where x is a module of lit_diffusion."""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1])
        base = f"{base}.{node.module}" if node.module else base
    else:
        base = node.module
    submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    # `from pkg import sub1, sub2` (all submodules) runs pkg/__init__ too, but within pkg that package is already
    # being imported: only the submodules are edges of the import graph
    return submodules if len(submodules) == len(node.names) else [base, *submodules]


@lru_cache(maxsize=None)
def imports_of(module: str) -> tuple[Import, ...]:
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, child.lineno, runs) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.extend(Import(t, child.lineno, runs) for t in _resolve_from(module, is_package, child))
            else:
                visit(child, runs and not (isinstance(child, ast.If) and _is_type_checking(child)))

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return tuple(found)


def package_imports(module: str) -> list[Import]:
    return [i for i in imports_of(module) if i.target.split(".")[0] == PACKAGE]


def where(module: str, imp: Import) -> str:
    return f"{MODULES[module].relative_to(PACKAGE_DIR.parent)}:{imp.line}"


def modules_of(units) -> list[str]:
    return [m for m in MODULES if unit_of(m) in units]


def test_every_folder_has_a_place_in_the_map():
    unknown = {unit_of(m) for m in MODULES} - set(ALLOWED) - TOP - {ROOT}
    assert not unknown, f"folders without a rule in tests/test_architecture.py (add them to ALLOWED): {sorted(unknown)}"


def test_the_package_root_imports_nothing_of_the_package():
    bad = [f"{where(PACKAGE, i)} imports {i.target}" for i in package_imports(PACKAGE)]
    assert not bad, "lit_diffusion/__init__.py is importable from every folder, so it must import none:\n" + "\n".join(bad)


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_each_folder_imports_only_the_folders_below_it(unit):
    bad = []
    for module in modules_of({unit}):
        for imp in package_imports(module):
            target = unit_of(imp.target)
            if target not in ALLOWED[unit] | {unit, ROOT}:
                bad.append(f"{where(module, imp)} imports {imp.target} ({unit} -> {target or PACKAGE})")
    assert not bad, f"{unit} may import only {sorted(ALLOWED[unit])}:\n" + "\n".join(bad)


def test_nothing_below_training_imports_training_or_the_layers_on_top():
    above = {"training"} | TOP
    bad = [f"{where(m, i)} imports {i.target}" for m in modules_of(BELOW_TRAINING)
           for i in package_imports(m) if unit_of(i.target) in above]
    assert not bad, "imports pointing upwards:\n" + "\n".join(bad)


@pytest.mark.parametrize("unit", LIGHTNING_FREE)
def test_pure_folders_do_not_import_lightning_or_wandb(unit):
    bad = [f"{where(m, i)} imports {i.target}" for m in modules_of({unit})
           for i in imports_of(m) if i.target.split(".")[0] in FORBIDDEN]
    assert not bad, f"{unit} must not import {FORBIDDEN}:\n" + "\n".join(bad)


def _executed_by_importing(target: str) -> list[str]:
    """Importing lit_diffusion.a.b runs lit_diffusion/__init__, a/__init__ and b, in that order."""
    parts = target.split(".")
    return [m for m in (".".join(parts[:n]) for n in range(1, len(parts) + 1)) if m in MODULES]


def chain_to_forbidden(start: str) -> list[str] | None:
    """The shortest chain of imports from `start` to a forbidden package, or None.

    Imports inside functions are followed too (calling the function imports Lightning just the same);
    only `if TYPE_CHECKING:` imports, which never run, are not."""
    seen, frontier = {start}, [[start]]
    while frontier:
        next_frontier = []
        for chain in frontier:
            for imp in imports_of(chain[-1]):
                if not imp.runs:
                    continue
                if imp.target.split(".")[0] in FORBIDDEN:
                    return [*chain, imp.target]
                for module in _executed_by_importing(imp.target):
                    if module not in seen:
                        seen.add(module)
                        next_frontier.append([*chain, module])
        frontier = next_frontier
    return None


def from_last_own_module(chain: list[str], unit: str) -> list[str]:
    """The chain from the last of its modules that lies in `unit`: where the unit's own import leaves it."""
    last = max(k for k, m in enumerate(chain[:-1]) if unit_of(m) == unit)
    return chain[last:]


@pytest.mark.parametrize("unit", LIGHTNING_FREE)
def test_pure_folders_do_not_reach_lightning_or_wandb_through_imports(unit):
    chains = [chain_to_forbidden(m) for m in modules_of({unit})]
    # a forbidden import made inside the unit itself is reported by the test above
    bad = sorted({" -> ".join(from_last_own_module(c, unit)) for c in chains if c and unit_of(c[-2]) != unit})
    assert not bad, f"{unit} reaches {FORBIDDEN} through lit_diffusion imports:\n" + "\n".join(bad)


# The top floor among itself: who may import whom (cli dispatches to commands; commands drive compare, launch and
# published; compare launches SLURM arrays). compare never imports commands: a command is a thin shell over it.
TOP_ALLOWED = {
    "cli": {"commands"},
    "commands": {"compare", "launch", "published"},
    "compare": {"launch"},
    "launch": set(),
    "published": set(),
}


@pytest.mark.parametrize("unit", sorted(TOP))
def test_top_folders_import_each_other_only_downwards(unit):
    bad = [f"{where(m, i)} imports {i.target} ({unit} -> {unit_of(i.target)})" for m in modules_of({unit})
           for i in package_imports(m) if unit_of(i.target) in TOP - {unit} - TOP_ALLOWED[unit]]
    assert not bad, f"{unit} may import of the top floor only {sorted(TOP_ALLOWED[unit])}:\n" + "\n".join(bad)


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of lit_diffusion it imports (at module level or inside functions; not the imports
    under `if TYPE_CHECKING:`, which never run). A lazy import inside a function still ties the two modules."""
    return {m: {i.target for i in package_imports(m) if i.runs and i.target in MODULES and i.target != m}
            for m in MODULES}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def connect(root: str) -> None:
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return cycles


def test_no_import_cycles_inside_or_between_folders():
    cycles = import_cycles(import_graph())
    assert not cycles, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@lru_cache(maxsize=None)
def private_names_defined(unit: str) -> frozenset[str]:
    """Private functions, classes, methods and class attributes defined in a folder's modules."""
    names = set()
    for module in modules_of({unit}):
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name) and _private(t.id))
                names.update(t.attr for t in targets if isinstance(t, ast.Attribute) and _private(t.attr))
    return frozenset(names)


def private_uses_across_folders(module: str) -> list[str]:
    """Private names of another folder used here: imported by name, or reached as an attribute (`obj._name`)
    that this folder does not define itself (`self._x` of its own classes is fine)."""
    unit = unit_of(module)
    own = private_names_defined(unit)
    bad = [f"{where(module, i)} imports {i.target}" for i in package_imports(module)
           if _private(i.target.rsplit(".", 1)[-1]) and unit_of(i.target) != unit]
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            if unit_of(node.module) != unit:
                bad += [f"{MODULES[module].relative_to(PACKAGE_DIR.parent)}:{node.lineno} imports {node.module}.{a.name}"
                        for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            others = [u for u in set(ALLOWED) | TOP if u != unit and node.attr in private_names_defined(u)]
            if others:
                bad.append(f"{MODULES[module].relative_to(PACKAGE_DIR.parent)}:{node.lineno} uses .{node.attr} "
                           f"(private to {', '.join(sorted(others))})")
    return sorted(set(bad))


@pytest.mark.parametrize("unit", sorted(set(ALLOWED) | TOP))
def test_no_private_members_used_across_folders(unit):
    bad = [b for m in modules_of({unit}) for b in private_uses_across_folders(m)]
    assert not bad, f"{unit} uses private members of other folders (make them public where they belong):\n" + \
        "\n".join(bad)
