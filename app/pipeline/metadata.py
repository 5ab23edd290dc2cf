"""The only exiftool code: embedded EXIF/IPTC/XMP/ICC metadata as grouped JSON.

One exiftool process is started lazily and kept open (``-stay_open``), so a
warm Lambda or a CLI run over many files pays Perl's start-up once. When
exiftool is missing, broken or hangs, the conversion still completes: the
record says why the metadata is partial and carries libvips' own EXIF fields.
"""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyvips

from app.pipeline import background

if TYPE_CHECKING:
    import exiftool

log = logging.getLogger(__name__)

_ARGS = ["-G", "-struct"]  # family-0 groups, structured XMP; exiftool -j already types numbers
_PRIVATE_TAGS = (
    "SourceFile",
    "File:Directory",
    "File:FileName",
    "File:FilePermissions",
    "File:FileAccessDate",
    "File:FileInodeChangeDate",
)
TIMEOUT_SECONDS = 120.0  # how long a conversion waits for exiftool's answer (a module value, so tests need not)
_helpers: dict[str, exiftool.ExifToolHelper] = {}
_stops: dict[str, threading.Event] = {}
Tags = tuple[dict[str, Any], "str | None"]


def read_embedded_soon(path: Path, executable: str) -> Future:
    """Start reading ``path``'s metadata in the background (it overlaps with tiling)."""
    return _exiftool_thread().submit(read_embedded, path, executable)


def collect(future: Future, executable: str, timeout: float | None = None) -> Tags:
    """The tags from ``read_embedded_soon``; a hung exiftool is killed and reported, never waited on forever."""
    timeout = TIMEOUT_SECONDS if timeout is None else timeout
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        _discard(executable)
        return {}, f"exiftool gave no answer in {timeout:.0f}s"


def read_embedded(path: Path, executable: str) -> Tags:
    """(exiftool's grouped tags, None) or ({}, the reason they are missing)."""
    if shutil.which(executable) is None:
        return {}, f"exiftool not found ({executable!r}); metadata is limited to libvips' EXIF fields"
    try:
        tags = _helper(executable).get_metadata(str(path))[0]
    except Exception as error:  # exiftool's failures come in many types; each means "partial"
        _discard(executable)
        return {}, f"exiftool failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    for name in _PRIVATE_TAGS:  # local paths and file-system details mean nothing once published
        tags.pop(name, None)
    return tags, None


def vips_fields(image: pyvips.Image) -> dict[str, Any]:
    """libvips' own view of the EXIF, as the fallback when exiftool is unavailable."""
    fields = {}
    for name in image.get_fields():
        if name.startswith("exif-ifd") or name in ("xres", "yres", "resolution-unit", "orientation"):
            value = image.get(name)
            fields[name] = value if isinstance(value, (int, float, str)) else str(value)
    return fields


@functools.cache
def _exiftool_thread() -> ThreadPoolExecutor:
    """The one long-lived thread that talks to exiftool.

    pyexiftool asks the kernel to end exiftool when the thread that started it
    exits, so the process must belong to a thread that outlives each call. The
    thread, and so exiftool, runs at idle priority: it overlaps with tiling.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="exiftool", initializer=background.lower_this_thread)


def _helper(executable: str) -> exiftool.ExifToolHelper:
    helper = _helpers.get(executable)
    if helper is None:
        import exiftool  # here, on the background thread: the import needs no time on the tiling path

        helper = exiftool.ExifToolHelper(executable=executable, common_args=_ARGS)
        _helpers[executable] = helper
        _watch(helper, _stops.setdefault(executable, threading.Event()))
        helper.run()
    return helper


def _watch(helper: exiftool.ExifToolHelper, stop: threading.Event) -> None:
    """Close the pipes of an exiftool that died, whenever it dies.

    pyexiftool reads its pipes until exiftool's "ready" marker and spins
    forever on a dead process's end-of-file; with the pipes closed the read
    raises, and the caller records the metadata as partial instead of hanging.
    """

    def watch() -> None:
        while not stop.wait(0.1):
            process = getattr(helper, "_process", None)
            if process is not None and process.poll() is not None:
                _close_pipes(process)
                return

    threading.Thread(target=watch, name="exiftool-watch", daemon=True).start()


def _discard(executable: str) -> None:
    """Kill the helper's exiftool and close its pipes, which also frees a thread stuck reading them."""
    helper = _helpers.pop(executable, None)
    _stops.pop(executable, threading.Event()).set()
    process = getattr(helper, "_process", None)  # pyexiftool offers no non-blocking way to stop
    if process is None:
        return
    process.kill()
    process.wait()
    _close_pipes(process)
    if getattr(helper, "_running", False):
        helper._flag_running_false()  # so pyexiftool's own clean-up does not touch the closed pipes


def _close_pipes(process) -> None:
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


atexit.register(lambda: [_discard(executable) for executable in list(_helpers)])
