"""Regenerate the README's settings table from config.py (a test fails when they differ)."""
from pathlib import Path

from app.__main__ import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"

text = README.read_text()
start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
README.write_text(f"{text[:start]}\n{settings_table()}\n{text[end:]}")
print(f"updated the settings table in {README}")
