"""Deep Zoom tiles reported as libvips finishes them, so publishing can overlap with tiling.

dzsave writes each tile once, straight to its final name, and closes it; the
kernel's inotify reports that close. All level folders are made (and watched)
before dzsave starts, so no tile can slip past the watch. Where inotify is
missing (macOS, a sandbox without it) nothing is reported early and the
caller simply reports every tile after dzsave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class FinishedTiles:
    """``with FinishedTiles(files_dir, levels, on_tile): dzsave(...)`` calls ``on_tile(path)`` per closed tile.

    ``on_tile`` runs on a background thread, at most once per file; ``reported``
    holds the files it was called for, so the caller can report the rest. With
    ``on_tile`` None this does nothing.
    """

    def __init__(self, files_dir: Path, levels: int, on_tile: Callable[[Path], None] | None) -> None:
        self.reported: set[Path] = set()
        self._on_tile = on_tile
        self._folders = [files_dir / str(level) for level in range(levels)]
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FinishedTiles:
        if self._on_tile is None:  # nobody to tell
            return self
        for folder in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
        watching = _inotify()
        if watching is not None:
            notify, close_write = watching
            by_watch = {notify.add_watch(folder, close_write): folder for folder in self._folders}
            self._thread = threading.Thread(
                target=self._run, args=(notify, by_watch), name="finished-tiles", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error

    def _run(self, notify, by_watch: dict[int, Path]) -> None:
        with notify:
            while True:
                stopping = self._stop.is_set()  # read before draining: every close before dzsave returned is queued
                for event in notify.read(timeout=0 if stopping else 50):
                    if event.name.endswith(".jpg") and self._error is None:
                        self._report(by_watch[event.wd] / event.name)
                if stopping:
                    return

    def _report(self, path: Path) -> None:
        try:
            self._on_tile(path)
            self.reported.add(path)
        except BaseException as error:  # re-raised in the caller's thread
            self._error = error


def _inotify() -> tuple[Any, int] | None:
    """An inotify instance and the flag for "closed after writing", or None where there is no inotify.

    Imported here, not at the top: only callers that publish early need it, and the CLI starts faster without.
    """
    try:
        from inotify_simple import INotify, flags
    except (ImportError, OSError):  # not Linux
        return None
    try:
        notify = INotify()
    except OSError as error:  # out of inotify instances, or forbidden
        log.info("no inotify (%s): tiles are published after tiling", error)
        return None
    return notify, flags.CLOSE_WRITE
