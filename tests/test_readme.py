"""The README's promises that code can check."""
from pathlib import Path

from app.__main__ import settings_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_settings_table_is_the_generated_one():
    start = README.index("<!-- settings:begin -->") + len("<!-- settings:begin -->")
    end = README.index("<!-- settings:end -->")
    assert README[start:end].strip() == settings_table(), "run: .venv/bin/python scripts/update_readme_settings.py"


def test_the_two_commands_are_the_makefile_targets_ci_runs():
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
