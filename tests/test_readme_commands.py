"""The docs' commands, as written, so that the docs and the behaviour cannot drift apart.

Every `lit-diffusion ...` line of the code blocks of README.md, data/README.md and slurm/README.md is parsed by
its command's own parser (`--print_config` for the command functions; the LightningCLI parser, nothing
instantiated, for fit/validate/test); the digits commands, which need no download, are also run as written in
a scratch folder.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from lit_diffusion.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "data/README.md", "slurm/README.md")


def shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced code blocks tagged bash or sh, or untagged, and of the indented (4-space) code
    blocks. Fences are walked line by line: a regex over the whole text pairs the closing fence of a python or
    yaml block with the next opening one."""
    blocks, body, language, indented = [], None, None, []
    for line in text.splitlines():
        if body is None and line.startswith("    ") and not line.lstrip().startswith(("-", "*")):
            indented.append(line[4:])
            continue
        if indented:
            blocks.append("\n".join(indented) + "\n")
            indented = []
        if line.lstrip().startswith("```"):
            if body is None:
                language, body = line.strip()[3:].strip(), []
            else:
                if language in ("", "bash", "sh"):
                    blocks.append("\n".join(body) + "\n")
                body = None
        elif body is not None:
            body.append(line)
    if indented:
        blocks.append("\n".join(indented) + "\n")
    return blocks


def doc_commands(text: str) -> list[list[str]]:
    """The `lit-diffusion` command lines of the fenced code blocks (continuations joined, comments dropped)."""
    commands = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.lstrip().startswith("lit-diffusion") and "&& lit-diffusion" not in line:
                continue  # python, yaml and other shell lines
            words = shlex.split(line, comments=True)
            while "lit-diffusion" in words:  # `... && lit-diffusion ...` chains
                words = words[words.index("lit-diffusion") + 1:]
                end = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:end])
                words = words[end:]
    return commands


COMMANDS = [(doc, words) for doc in DOCS for words in doc_commands((REPO / doc).read_text())]


def test_the_docs_have_commands():
    assert len(COMMANDS) > 20, COMMANDS


@pytest.mark.parametrize("doc, words", COMMANDS, ids=[f"{d}: {' '.join(w)[:60]}" for d, w in COMMANDS])
def test_doc_command_parses(doc, words, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the configs are named relative to the repository
    if words[0] in ("fit", "validate", "test"):
        from lit_diffusion.training.config import compose_fit_config

        configs = [words[i + 1] for i, w in enumerate(words) if w in ("-c", "--config")]
        rest = [w for i, w in enumerate(words[1:], 1) if w not in ("-c", "--config") and words[i - 1] not in
                ("-c", "--config")]
        assert isinstance(compose_fit_config(configs, rest), dict)
        return
    assert cli_main([*words, "--print_config"]) == 0, capsys.readouterr().err


def test_digits_commands_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # data/shards/... is written under the scratch folder
    ran = 0
    for doc, words in COMMANDS:
        if words[:3] == ["data", "build", "digits"] or (words[:1] == ["data"] and words[1] in ("info", "verify")
                                                        and "digits" in words[2]):
            if words[1] == "build":
                words = [*words, "--overwrite"]  # the docs build the same folder more than once
            assert cli_main(words) == 0, (doc, words, capsys.readouterr().err)
            ran += 1
    assert ran >= 4
