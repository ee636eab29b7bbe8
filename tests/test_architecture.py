"""DESIGN.md §1: the dependency direction between folders, checked on the import statements."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lit_diffusion"
# folder -> package folders it may import from (besides itself)
ALLOWED = {
    "samplers": set(),
    "backbones": set(),
    "objectives": {"samplers"},
}
FORBIDDEN_BELOW_TRAINING = ("lightning", "pytorch_lightning", "wandb")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_pure_torch_folders_import_only_what_they_may(folder):
    for path in sorted((PACKAGE / folder).glob("*.py")):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_BELOW_TRAINING, f"{path.name} imports {name}"
            if top == "lit_diffusion":
                sub = name.split(".")[1]
                assert sub == folder or sub in ALLOWED[folder], f"{folder}/{path.name} imports {name}"


def test_no_module_imports_lightning_or_wandb_below_training():
    for folder in ("objectives", "samplers", "backbones", "evaluation"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            tops = {n.split(".")[0] for n in imports_of(path)}
            assert not tops & set(FORBIDDEN_BELOW_TRAINING), f"{folder}/{path.name} imports {tops & set(FORBIDDEN_BELOW_TRAINING)}"
