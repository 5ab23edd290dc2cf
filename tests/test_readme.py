"""The documents' promises that code can check: commands, make targets, paths, links, the settings table."""

import argparse
import re
from pathlib import Path

import pytest

from app.__main__ import _parser, settings_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
BENCHMARKS = (ROOT / "BENCHMARKS.md").read_text()
DOCUMENTS = {"README.md": README, "ARCHITECTURE.md": ARCHITECTURE, "BENCHMARKS.md": BENCHMARKS}

PATH_ROOTS = ("app/", "tooling/", "scripts/", "bench/", "batch_fallback/", "tests/", "templates/", "static/")
ROOTS = "|".join(map(re.escape, PATH_ROOTS))
PATH = re.compile(rf"(?<![\w./-])((?:{ROOTS})[\w./-]*)")
LOOKS_LIKE_A_FILE = re.compile(r"(\.[A-Za-z0-9]+|/)$")


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))


def subcommands() -> set[str]:
    actions = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


def code(text: str) -> list[str]:
    """What a document shows as code: fenced blocks and inline spans (where commands and paths are named)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def make_targets_named(text: str) -> set[str]:
    return {target for snippet in code(text) for target in re.findall(r"\bmake ([A-Za-z][\w-]*)", snippet)}


def subcommands_named(text: str) -> set[str]:
    return set(re.findall(r"python -m app (\w[\w-]*)", text))


def repository_paths_named(text: str) -> set[str]:
    """Paths like app/jobs.py or scripts/ in code and in relative links (pragmatic: known roots, a file or a folder)."""
    snippets = code(text) + re.findall(r"\]\(([^)#\s]+)", text)
    found = {match.rstrip(".,;:") for snippet in snippets for match in PATH.findall(snippet)}
    return {path for path in found if LOOKS_LIKE_A_FILE.search(path)}


def ignored_by_git(path: str) -> bool:
    """Generated folders (bench/data/ ...) are named but not committed: allowed when .gitignore lists them."""
    ignored = [
        line.strip().lstrip("/")
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if "/" in line.strip().rstrip("/")
    ]
    return any(path.startswith(entry.rstrip("/") + "/") or path == entry.rstrip("/") for entry in ignored)


def missing_paths(text: str) -> list[str]:
    return sorted(p for p in repository_paths_named(text) if not (ROOT / p).exists() and not ignored_by_git(p))


def relative_links(text: str) -> set[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return {link.split("#")[0] for link in links if not re.match(r"[a-z]+:|#", link)} - {""}


def cites_design_as_ours(text: str) -> list[str]:
    """DESIGN.md is not in this repository: it may be named only as ../shared/DESIGN.md, what ARCHITECTURE.md
    supersedes."""
    return [line for line in text.splitlines() if re.search(r"(?<!\.\./shared/)\bDESIGN\.md", line)]


def test_the_settings_table_is_the_generated_one():
    start = README.index("<!-- settings:begin -->") + len("<!-- settings:begin -->")
    end = README.index("<!-- settings:end -->")
    assert README[start:end].strip() == settings_table(), "run: .venv/bin/python scripts/update_readme_settings.py"


def test_the_two_commands_are_the_makefile_targets_ci_runs():
    assert "make demo" in README and "make test" in README
    assert {"demo", "test"} <= makefile_targets()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE), ".ci/run must run the README's test command"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_make_target_named_is_in_the_makefile(name):
    named = make_targets_named(DOCUMENTS[name])
    assert named, f"{name} names no make target: is the pattern still finding them?"
    assert named <= makefile_targets(), f"{name} names make targets the Makefile lacks: {named - makefile_targets()}"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_subcommand_named_is_one_the_cli_has(name):
    named = subcommands_named(DOCUMENTS[name])
    assert named, f"{name} names no `python -m app` subcommand: is the pattern still finding them?"
    assert named <= subcommands(), f"{name} names subcommands app/__main__.py lacks: {named - subcommands()}"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_repository_path_named_exists(name):
    assert repository_paths_named(DOCUMENTS[name]), f"{name} names no repository path: is the pattern still working?"
    assert missing_paths(DOCUMENTS[name]) == [], f"{name} names paths that are not in the repository"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_relative_link_resolves(name):
    missing = sorted(link for link in relative_links(DOCUMENTS[name]) if not (ROOT / link).exists())
    assert missing == [], f"{name} links files that are not in the repository"


def test_the_readme_links_the_architecture_and_the_benchmarks():
    assert {"ARCHITECTURE.md", "BENCHMARKS.md"} <= relative_links(README)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_no_document_cites_design_md_as_a_repository_file(name):
    assert cites_design_as_ours(DOCUMENTS[name]) == []
