"""BENCHMARKS.md's figures are written by the benchmark run, between each section's markers, never by hand."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from results import Column, Section, Target, update_markdown  # noqa: E402


def _section(value: float) -> Section:
    section = Section("demo", "Demo section", [Column("side", "side"), Column("s", "seconds", "{:.2f}")])
    section.rows.append({"side": "a|b", "s": value})
    section.targets.append(Target("ratio", "48mp", value, "<=", 1.3, "x"))
    section.notes.append("a note")
    return section


def test_a_section_replaces_only_its_own_block(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\nProse before.\n\n<!-- bench:demo (written by bench/run.py; edits are overwritten) -->\n"
        "old figures\n<!-- /bench:demo -->\n\nProse after.\n"
    )
    update_markdown(path, [_section(1.234)], "Measured now by `bench/run.py --only demo`.")
    text = path.read_text()
    assert "old figures" not in text and text.startswith("# Benchmarks\n\nProse before.") and "Prose after." in text
    assert "Measured now by `bench/run.py --only demo`." in text
    assert "| a\\|b | 1.23 |" in text and "- PASS    48mp  ratio: 1.23x (target <= 1.3x)" in text
    update_markdown(path, [_section(2.5)], "Measured later.")
    again = path.read_text()
    assert "1.23 |" not in again and "| a\\|b | 2.50 |" in again and again.count("<!-- /bench:demo -->") == 1


def test_a_section_without_a_block_gets_one_at_the_end(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n")
    update_markdown(path, [_section(1.0)], "Measured.")
    text = path.read_text()
    assert "\n## Demo section\n\n<!-- bench:demo" in text and text.rstrip().endswith("<!-- /bench:demo -->")
