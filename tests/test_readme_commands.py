"""The docs' commands, as written, so that the docs and the behaviour cannot drift apart.

Every `lit-diffusion ...` line of the code blocks of README.md, the topic pages docs/*.md, data/README.md and
slurm/README.md is parsed by its command's own parser (`--print_config` for the command functions; the
LightningCLI parser, nothing instantiated, for fit/validate/test); the digits commands, which need no download,
are also run as written in a scratch folder. Every relative link and image of those pages points at a file that
exists, and every `#anchor` into a page at one of its headings.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lit_diffusion.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
TOPIC_PAGES = tuple(sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))
DOCS = ("README.md", *TOPIC_PAGES, "data/README.md", "slurm/README.md")


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


def test_the_topic_pages_are_read():
    """The README is a front door to docs/: its pages exist, are read here, and hold commands of their own."""
    assert len(TOPIC_PAGES) >= 11, TOPIC_PAGES
    with_commands = {doc for doc, _ in COMMANDS if doc.startswith("docs/")}
    assert len(with_commands) >= 8, with_commands


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens (outside code)."""
    anchors, fenced = set(), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def relative_links(doc: str) -> list[str]:
    return [t for t in LINK.findall((REPO / doc).read_text()) if not re.match(r"[a-z]+:", t)]


LINKS = [(doc, target) for doc in DOCS for target in relative_links(doc)]


def test_the_docs_have_links():
    assert len(LINKS) > 40, LINKS


@pytest.mark.parametrize("doc, target", LINKS, ids=[f"{d}: {t}" for d, t in LINKS])
def test_doc_link_resolves(doc, target):
    path, _, anchor = target.partition("#")
    page = (REPO / doc).parent / path if path else REPO / doc
    assert page.resolve().is_file(), f"{doc} links to {target}, which does not exist"
    if anchor and page.suffix == ".md":
        assert anchor in heading_anchors(page.read_text()), f"{doc} links to #{anchor}, no such heading in {path or doc}"


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
