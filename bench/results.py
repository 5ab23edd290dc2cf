"""The benchmark's shared vocabulary: what a measurement receives and what it returns.

A measurement is a function ``measure(ctx: Context) -> Section``. It gets the
prepared images and the run options; it returns a table (rows), the
individual runs behind it, and targets judged PASS/MISS. ``run.py`` prints
every section the same way and dumps them all to JSON, so adding a
measurement (e.g. S3 publishing) means writing one function and listing it
in ``run.MEASUREMENTS``; nothing else changes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchImage:
    """One benchmark input: a cached synthetic JPEG, plus the targets that apply to its size."""

    key: str  # what --only selects, e.g. "430mp"
    width: int
    height: int
    path: Path
    rss_limit_mb: float | None = None  # peak-RSS target, only where it is a requirement

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass(frozen=True)
class Context:
    """Everything a measurement needs; measurements never parse arguments or find paths themselves."""

    repo: Path
    python: str  # the project's interpreter, so children use the same libvips build
    work_dir: Path  # scratch space for outputs, under bench/data/
    images: tuple[BenchImage, ...]
    runs: int
    keep: bool
    log: Callable[[str], None] = print
    options: dict[str, Any] = field(default_factory=dict)  # a measurement's own options, e.g. s3_latency_ms


def set_aside(ctx: Context, path: Path) -> None:
    """Move ``path`` into the discard folder, which ``bench/run.py`` deletes after the last measurement.

    Deleting a tree frees its inodes, and ext4 without a journal (as on this
    project's VMs) checks every inode freed in the last minute or so, one by
    one, before reusing it: a tree deleted just before a run makes that run's
    file and folder creation several times slower, and bills it to whichever
    side creates more inodes. A rename frees none.
    """
    if path.exists():
        discard = discard_dir(ctx.work_dir)
        discard.mkdir(parents=True, exist_ok=True)
        path.rename(discard / f"{len(list(discard.iterdir()))}-{path.name}")


def discard_dir(work_dir: Path) -> Path:
    return work_dir.parent / f"{work_dir.name}-discarded"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{}"  # applied to the value; None values print as "-"


@dataclass(frozen=True)
class Target:
    """One requirement, judged on one image: ``value <op> limit``."""

    name: str
    image: str
    value: float
    op: str  # "<=" or "<"
    limit: float
    unit: str = ""
    digits: int = 2  # decimals shown: enough that a PASS/MISS never shows equal numbers

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value < self.limit

    def describe(self) -> str:
        verdict = "PASS" if self.passed else "MISS"
        target = f"target {self.op} {self.limit:g}{self.unit}"
        return f"{verdict}  {self.image:>6}  {self.name}: {self.value:.{self.digits}f}{self.unit} ({target})"


@dataclass
class Section:
    """A measurement's results: a summary table, the raw runs, the targets, free-form notes."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = [c.key for c in self.columns]
        data["targets"] = [{**asdict(t), "passed": t.passed} for t in self.targets]
        return data


def summary(values: list[float]) -> dict[str, float]:
    """Median (the headline: robust to one noisy run), plus min and max to show the spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def format_table(columns: list[Column], rows: list[dict[str, Any]]) -> str:
    """A plain-text table with right-aligned columns, readable in a terminal and in a CI log."""
    cells = [[c.header for c in columns]]
    for row in rows:
        cells.append(["-" if row.get(c.key) is None else c.fmt.format(row[c.key]) for c in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# BENCHMARKS.md: each section's latest figures, written by the run that measured them --------------------------
def _marks(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} (written by bench/run.py; edits are overwritten) -->", f"<!-- /bench:{name} -->"


def markdown_block(section: Section, provenance: str) -> str:
    """One section as Markdown: where and how it was measured, the table, the targets, the notes."""
    columns = section.columns
    lines = [provenance, "", "| " + " | ".join(c.header for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in section.rows:
        cells = ["" if row.get(c.key) is None else c.fmt.format(row[c.key]) for c in columns]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if section.targets:
        lines += ["", "Targets:", ""] + [f"- {target.describe()}" for target in section.targets]
    if section.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in section.notes]
    return "\n".join(lines)


def update_markdown(path: Path, sections: list[Section], provenance: str) -> list[str]:
    """Replace each section's marked block in ``path`` (appending a heading and block for a section that has none
    yet); the names of the sections written."""
    text = path.read_text() if path.exists() else ""
    for section in sections:
        begin, end = _marks(section.name)
        block = f"{begin}\n{markdown_block(section, provenance)}\n{end}"
        start, stop = text.find(begin), text.find(end)
        if start >= 0 and stop > start:
            text = text[:start] + block + text[stop + len(end) :]
        else:
            text = text.rstrip("\n") + f"\n\n## {section.title}\n\n{block}\n"
    path.write_text(text)
    return [section.name for section in sections]
