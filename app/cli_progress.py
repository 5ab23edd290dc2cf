"""Progress bars for the CLI: files done of N, and the current file's tiling percentage."""
from __future__ import annotations

import sys

from tqdm import tqdm


class ConversionProgress:
    def __init__(self, files: int) -> None:
        self._files = tqdm(total=files, unit="file", desc="images", disable=files < 2, file=sys.stderr)
        self._current: tqdm | None = None

    def __enter__(self) -> "ConversionProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_current()
        self._files.close()

    def start(self, name: str) -> None:
        self._finish_current()
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
            self._files.update(1)
