"""Regenerate the README's settings table from config.py (a test fails when they differ)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, as the README test's message says

from app.__main__ import settings_table  # noqa: E402

README = ROOT / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"

text = README.read_text()
start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
README.write_text(f"{text[:start]}\n{settings_table()}\n{text[end:]}")
print(f"updated the settings table in {README}")
