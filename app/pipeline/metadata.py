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
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import exiftool
import pyvips

log = logging.getLogger(__name__)

_ARGS = ["-G", "-struct"]  # family-0 groups, structured XMP; exiftool -j already types numbers
_PRIVATE_TAGS = ("SourceFile", "File:Directory", "File:FileName", "File:FilePermissions",
                 "File:FileAccessDate", "File:FileInodeChangeDate")
_helpers: dict[str, exiftool.ExifToolHelper] = {}
Tags = tuple[dict[str, Any], "str | None"]


def read_embedded_soon(path: Path, executable: str) -> Future:
    """Start reading ``path``'s metadata in the background (it overlaps with tiling)."""
    return _exiftool_thread().submit(read_embedded, path, executable)


def collect(future: Future, executable: str, timeout: float = 120.0) -> Tags:
    """The tags from ``read_embedded_soon``; a hung exiftool is killed and reported, never waited on forever."""
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        _discard(executable)
        return {}, f"exiftool gave no answer in {timeout:.0f}s"


def read_embedded(path: Path, executable: str) -> Tags:
    """(exiftool's grouped tags, None) or ({}, the reason they are missing)."""
    problem = _unusable(executable)
    if problem:
        return {}, problem
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
    exits, so the process must belong to a thread that outlives each call.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="exiftool")


@functools.cache
def _unusable(executable: str) -> str | None:
    """Why ``executable`` cannot serve pyexiftool, checked once: pyexiftool waits forever on a dead process."""
    if shutil.which(executable) is None:
        return f"exiftool not found ({executable!r}); metadata is limited to libvips' EXIF fields"
    try:
        answer = subprocess.run([executable, "-ver"], capture_output=True, text=True, timeout=30)
        version = float(answer.stdout.strip())
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return f"exiftool failed: {executable!r} -ver did not print a version"
    return None if version >= 12.15 else f"exiftool failed: version {version} is older than 12.15"


def _helper(executable: str) -> exiftool.ExifToolHelper:
    helper = _helpers.get(executable)
    if helper is None:
        helper = exiftool.ExifToolHelper(executable=executable, common_args=_ARGS)
        helper.run()
        _helpers[executable] = helper
    return helper


def _discard(executable: str) -> None:
    """Kill the helper's exiftool and close its pipes, which also frees a thread stuck reading them."""
    helper = _helpers.pop(executable, None)
    process = getattr(helper, "_process", None)  # pyexiftool offers no non-blocking way to stop
    if process is None:
        return
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    helper._flag_running_false()  # so pyexiftool's own clean-up does not touch the closed pipes


atexit.register(lambda: [_discard(executable) for executable in list(_helpers)])
