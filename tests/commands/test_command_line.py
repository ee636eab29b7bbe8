"""Every command in one style: --help and --print_config work, a config file gives the same arguments as the
flags, and the flag spellings of the README and users' scripts (hyphens, bare booleans, --no-X) still parse."""
from __future__ import annotations

from itertools import takewhile
from pathlib import Path

import pytest
import yaml

from lit_diffusion.cli import main as cli_main
from lit_diffusion.commands import compare, data, reflow, sample, slurm, toy2d
from lit_diffusion.commands.parsing import parse

REPO = Path(__file__).resolve().parents[2]
TRAINING = [str(REPO / "experiments/digits/dit.yaml"), str(REPO / "experiments/objectives/flow_matching.yaml")]

# each command with the arguments it requires
COMMANDS = [
    ["data", "build", "digits", "--out", "D"],
    ["data", "build", "mnist", "ROOT", "--out", "D"],
    ["data", "build", "imagefolder", "ROOT", "--out", "D"],
    ["data", "build", "cifar10", "ROOT", "--out", "D"],
    ["data", "build", "cifar100", "ROOT", "--out", "D"],
    ["data", "build", "npz", "x.npz", "--out", "D"],
    ["data", "build", "pairs", "noise.npy", "target.npy", "--out", "D"],
    ["data", "info", "D"],
    ["data", "verify", "D"],
    ["sample", "--ckpt", "a.ckpt", "--out", "D"],
    ["reflow", "--ckpt", "a.ckpt", "--num", "4", "--out", "D"],
    ["compare", "-c", "suite.yaml"],
    ["toy2d"],
    ["slurm", "submit", "-c", "a.yaml"],
    ["slurm", "sweep", "-c", "a.yaml", "--grid", "model.lr=1,2"],
    ["slurm", "status", "SWEEP"],
]


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "build"], ["slurm"]] +
                         [list(takewhile(lambda w: not w.startswith("-"), c[:3])) for c in COMMANDS],
                         ids=lambda a: " ".join(a[:3]) or "top")
def test_help_exits_0(argv, capsys):
    assert cli_main([*argv, "--help"]) == 0
    assert "usage: lit-diffusion" in capsys.readouterr().out


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_print_config_exits_0_and_reads_back(argv, capsys, tmp_path):
    assert cli_main([*argv, "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert isinstance(yaml.safe_load(printed), dict)
    words = [w for w in argv if w in ("data", "build", "info", "verify", "slurm", "submit", "sweep", "status")]
    words = words + ([argv[len(words)]] if words[-2:] == ["data", "build"] else [])
    (tmp_path / "args.yaml").write_text(printed)  # the printed config, given back, prints the same
    assert cli_main([*(words or argv[:1]), "-c", str(tmp_path / "args.yaml"), "--print_config"]) == 0
    assert capsys.readouterr().out == printed


def test_fit_stays_lightning_cli(capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["fit", "--help"])
    assert stop.value.code == 0 and "--trainer" in capsys.readouterr().out


def test_fit_validate_and_test_are_dispatched_through_commands(monkeypatch):
    import lit_diffusion.training.cli as training_cli
    from lit_diffusion.cli import COMMANDS

    assert {COMMANDS[name][0] for name in ("fit", "validate", "test")} == {"lit_diffusion.commands.fit"}
    seen = []
    monkeypatch.setattr(training_cli, "main", lambda argv: seen.append(argv) or 0)
    assert cli_main(["validate", "-c", "run.yaml", "--ckpt_path", "last"]) == 0
    assert seen == [["validate", "-c", "run.yaml", "--ckpt_path", "last"]]  # LightningCLI reads the command word


def test_hyphens_underscores_and_bare_booleans_parse_alike():
    spelled = {"hyphens": ["--ckpt", "a", "--out", "o", "--batch-size", "8", "--raw-weights", "--label", "-1"],
               "underscores": ["--ckpt=a", "--out", "o", "--batch_size", "8", "--raw_weights", "true", "--label=-1"]}
    parsed = [parse(sample.sample, argv, "sample") for argv in spelled.values()]
    assert parsed[0] == parsed[1] and parsed[0]["batch_size"] == 8 and parsed[0]["raw_weights"] is True
    build = data.COMMANDS["build"]
    assert parse(build["mnist"], ["R", "--split", "test", "--out", "D", "--no-shuffle", "--no-progress",
                                  "--shard-bytes", "64MB", "--val-fraction", "0.1", "--overwrite"], "mnist") == \
        parse(build["mnist"], ["R", "--split=test", "--out=D", "--shuffle=false", "--progress", "false",
                               "--shard_bytes", "64MB", "--val_fraction", "0.1", "--overwrite=true"], "mnist")
    pairs = parse(build["pairs"], ["n.npy", "t.npy", "--out", "D"], "pairs")
    assert (pairs["noise"], pairs["target"]) == ("n.npy", "t.npy")
    npz = parse(build["npz"], ["x.npz", "--latent-scale", "0.18215", "--out", "D"], "npz")
    assert npz["latent_scale"] == 0.18215


def test_slurm_configs_and_overrides_keep_their_places(tmp_path):
    argv = ["-c", "A.yaml", "--nodes", "2", "--trainer.max_steps", "5", "-c", "B.yaml", "--dry-run",
            "--model.x", "-1", "--gpus-per-node", "4", "--wandb_project=P", "--", "--data.batch_size", "3"]
    parsed = parse(slurm.submit, argv, "submit")
    assert parsed["configs"] == ["A.yaml", "B.yaml"] and parsed["nodes"] == 2 and parsed["gpus_per_node"] == 4
    assert parsed["dry_run"] is True
    assert parsed["overrides"] == ["--trainer.max_steps", "5", "--model.x", "-1", "--wandb_project=P",
                                   "--data.batch_size", "3"]
    sweep = parse(slurm.sweep, ["-c", "A.yaml", "--grid", "model.lr=1,2", "--grid", "data.batch_size=3,4",
                                "--max-parallel", "2", "--sweep-dir", "S"], "sweep")
    assert sweep["grid"] == ["model.lr=1,2", "data.batch_size=3,4"] and sweep["max_parallel"] == 2
    # the command's own arguments file, given with -c, gives the same arguments as the flags
    (tmp_path / "submit.yaml").write_text(yaml.safe_dump({k: v for k, v in parsed.items() if k != "overrides"}))
    from_file = parse(slurm.submit, ["-c", str(tmp_path / "submit.yaml"), "--trainer.max_steps", "5", "--model.x",
                                     "-1", "--wandb_project=P", "--", "--data.batch_size", "3"], "submit")
    assert from_file == parsed


def test_data_build_from_a_config_file_writes_the_same_shards(tmp_path, capsys):
    from lit_diffusion.data.dataset_json import read_dataset_json

    flags = ["--resolution", "12", "--shard-size", "700", "--no-progress", "--workers", "0", "--seed", "3"]
    assert cli_main(["data", "build", "digits", "--out", str(tmp_path / "a"), *flags]) == 0
    capsys.readouterr()
    assert cli_main(["data", "build", "digits", "--out", str(tmp_path / "b"), *flags, "--print_config"]) == 0
    (tmp_path / "args.yaml").write_text(capsys.readouterr().out)
    assert cli_main(["data", "build", "digits", "-c", str(tmp_path / "args.yaml")]) == 0
    a, b = read_dataset_json(tmp_path / "a"), read_dataset_json(tmp_path / "b")
    assert a.fingerprint == b.fingerprint and len(a.shards) == len(b.shards) == 3
    assert b.build["command"][:4] == ["lit-diffusion", "data", "build", "digits"]


@pytest.mark.parametrize("function, argv", [
    (sample.sample, ["--ckpt", "a.ckpt", "--out", "o", "--sampler", "heun", "--nfe", "7", "--num", "5", "--cfg",
                     "2", "--label", "3", "--seed", "4", "--batch-size", "2", "--raw-weights", "--device", "cpu"]),
    (reflow.reflow, ["--ckpt", "a.ckpt", "--num", "48", "--out", "p", "--sampler", "euler", "--nfe", "4",
                     "--batch-size", "16", "--device", "cpu"]),
    (toy2d.toy2d, ["--dataset", "two_moons", "--steps", "3", "--seed", "1"]),
    (data.COMMANDS["build"]["mnist"], ["R", "--split", "test", "--out", "D", "--no-progress", "--workers", "0"]),
], ids=["sample", "reflow", "toy2d", "data build mnist"])
def test_a_config_file_gives_the_arguments_of_the_flags(function, argv, tmp_path):
    flags = parse(function, argv, "x")
    (tmp_path / "args.yaml").write_text(yaml.safe_dump(flags))
    assert parse(function, ["-c", str(tmp_path / "args.yaml")], "x") == flags


def test_compare_takes_the_suite_or_its_own_arguments_file(tmp_path, monkeypatch, capsys):
    import lit_diffusion.compare as compare_package

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "objectives": []}))
    (tmp_path / "args.yaml").write_text(yaml.safe_dump({"suite": str(suite)}))
    for argv in (["-c", str(suite)], ["--config", str(suite)], ["-c", str(tmp_path / "args.yaml")],
                 ["--suite", str(suite)]):
        assert parse(compare.compare, argv, "compare") == {"suite": str(suite)}
    monkeypatch.setattr(compare_package, "load_suite", lambda path: ("loaded", path), raising=False)
    monkeypatch.setattr(compare_package, "run_suite", lambda s: tmp_path / f"report-{Path(s[1]).stem}.md",
                        raising=False)
    assert cli_main(["compare", "-c", str(suite)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'report-suite.md'}"


def test_toy2d_defaults_are_toy_configs():
    from lit_diffusion.compare.toy2d import ToyConfig

    defaults = parse(toy2d.toy2d, [], "toy2d")
    assert defaults == {"dataset": ToyConfig.dataset, "steps": ToyConfig.steps, "seed": ToyConfig.seed}


def test_errors_are_one_line_and_a_status(tmp_path, capsys):
    assert cli_main(["data", "info", str(tmp_path / "missing")]) == 1
    assert "lit-diffusion data info: error:" in capsys.readouterr().err
    assert cli_main(["sample", "--ckpt", "a", "--out", "o", "--num", "0"]) == 2
    assert cli_main(["sample", "--out", "o"]) == 2  # --ckpt is required: the parser says so
    assert cli_main(["nope"]) == 2 and cli_main(["data", "nope"]) == 2


def test_slurm_submit_dry_run_from_a_config_file_renders_the_same_script(tmp_path, capsys):
    flags = ["--nodes", "2", "--gpus-per-node", "4", "--time", "2:00:00", "--dry-run"]
    overrides = ["--trainer.default_root_dir", str(tmp_path / "run")]
    assert cli_main(["slurm", "submit", "-c", TRAINING[0], "-c", TRAINING[1], *flags, *overrides]) == 0
    script = capsys.readouterr().out
    assert cli_main(["slurm", "submit", "-c", TRAINING[0], "-c", TRAINING[1], *flags, "--print_config"]) == 0
    (tmp_path / "submit.yaml").write_text(capsys.readouterr().out)
    assert cli_main(["slurm", "submit", "-c", str(tmp_path / "submit.yaml"), *overrides]) == 0
    assert capsys.readouterr().out == script and "#SBATCH --nodes=2" in script
