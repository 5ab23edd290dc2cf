"""The code is kept as ruff.toml says (lint and format, 120 columns): a change that breaks it fails here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing_to_fix():
    result = ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted():
    result = ruff("format", "--check")
    assert result.returncode == 0, "run: .venv/bin/ruff format .\n" + result.stdout + result.stderr
