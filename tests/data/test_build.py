"""data/build.py: `data build` as a service. The command and a compare suite's `build:` list call the same
source functions through the same parser, so a suite builds exactly what `lit-diffusion data build` builds."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lit_diffusion.cli import main as cli_main
from lit_diffusion.compare.runner import ensure_shards
from lit_diffusion.data.build import SOURCES, command_line, parse_size


def test_sizes_and_the_recorded_command_line():
    assert parse_size("64MB") == 64_000_000 and parse_size("1GiB") == 1024**3 and parse_size(500) == 500
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")

    def f(a: int = 1, flag: bool = False):
        return a, flag

    assert command_line(["x"], dict(a=1, flag=True, other=3), f) == ["x", "--flag", "true"]


def suite(tmp_path, build):
    return SimpleNamespace(shards=str(tmp_path / "shards"), build=build, source="suite.yaml")


def test_a_suite_builds_what_the_command_builds(tmp_path):
    words = ["digits", "--resolution", "8", "--shard-size", "500", "--no-shuffle"]
    ensure_shards(suite(tmp_path / "suite", words))
    assert cli_main(["data", "build", *words, "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    a = json.loads((tmp_path / "suite" / "shards" / "dataset.json").read_text())
    b = json.loads((tmp_path / "cli" / "dataset.json").read_text())
    assert a["fingerprint"] == b["fingerprint"] and a["num_samples"] == 1797 and len(a["shards"]) == 4
    ensure_shards(suite(tmp_path / "suite", ["no-such-source"]))  # present shards: nothing is built or parsed


def test_a_bad_build_list_names_the_suite(tmp_path, capsys):
    with pytest.raises(RuntimeError, match=r"suite.yaml: 'build' \['digitz'\] .* unknown source 'digitz' \(one of "
                                           r"\['cifar10', 'cifar100', 'digits'"):
        ensure_shards(suite(tmp_path, ["digitz"]))
    with pytest.raises(RuntimeError, match=r"suite.yaml: 'build' \['digits', '--bogus', '1'\] is not valid"):
        ensure_shards(suite(tmp_path, ["digits", "--bogus", "1"]))
    assert "--bogus" in capsys.readouterr().err
    assert set(SOURCES) == {"digits", "mnist", "imagefolder", "cifar10", "cifar100", "npz", "pairs"}
