"""Progress for the CLI: files done of N and the current file's tiling percentage.

On a terminal these are live bars; in a log (CI, cron, a pipe) they become one
plain line per file, so logs stay readable.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


class ConversionProgress:
    def __init__(self, files: int) -> None:
        self._interactive = sys.stderr.isatty()
        self._total = files
        self._started = 0
        self._files = tqdm(total=files, unit="file", desc="images", file=sys.stderr,
                           disable=not self._interactive or files < 2)
        self._current: tqdm | None = None

    def __enter__(self) -> ConversionProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_current()
        self._files.close()

    def start(self, name: str) -> None:
        self._finish_current()
        self._started += 1
        if not self._interactive:
            print(f"[{self._started}/{self._total}] {name}", file=sys.stderr, flush=True)
            return
        self._current = tqdm(total=100, desc=name[:40], unit="%", leave=False, file=sys.stderr,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def update(self, percent: float) -> None:
        if self._current is not None and percent > self._current.n:
            self._current.update(percent - self._current.n)

    def write(self, line: str, err: bool = False) -> None:
        tqdm.write(line, file=sys.stderr if err else sys.stdout)

    def _finish_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        if self._started:
            self._files.update(self._started - self._files.n)
