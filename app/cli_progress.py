"""Progress for the CLI: files done of N and the current file's tiling percentage.

On a terminal these are live bars; in a log (CI, cron, a pipe) they become one
plain line per file, so logs stay readable. In log mode nothing listens to
libvips' progress at all: ``on_progress`` is None, which spares tiling a
callback into Python (and the GIL) per strip, and tqdm is never imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class ConversionProgress:
    def __init__(self, files: int) -> None:
        self._interactive = sys.stderr.isatty()
        self._total = files
        self._started = 0
        self._files = _bar(total=files, unit="file", desc="images") if self._interactive and files > 1 else None
        self._current: Any = None

    def __enter__(self) -> ConversionProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_current()
        if self._files is not None:
            self._files.close()

    @property
    def on_progress(self) -> Callable[[float], None] | None:
        """The tiling-percentage callback for ``convert``; None when no bar shows it."""
        return self._update if self._interactive else None

    def start(self, name: str) -> None:
        self._finish_current()
        self._started += 1
        if not self._interactive:
            print(f"[{self._started}/{self._total}] {name}", file=sys.stderr, flush=True)
            return
        self._current = _bar(
            total=100,
            desc=name[:40],
            unit="%",
            leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
        )

    def write(self, line: str, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        if self._interactive:
            from tqdm import tqdm

            tqdm.write(line, file=stream)  # keeps the bars below the line
        else:
            print(line, file=stream, flush=True)

    def _update(self, percent: float) -> None:
        if self._current is not None and percent > self._current.n:
            self._current.update(percent - self._current.n)

    def _finish_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        if self._files is not None and self._started:
            self._files.update(self._started - self._files.n)


def _bar(**options: Any) -> Any:
    from tqdm import tqdm  # only terminals get bars; a log never pays for the import

    return tqdm(file=sys.stderr, **options)
