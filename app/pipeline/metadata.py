"""The only exiftool code: embedded EXIF/IPTC/XMP/ICC metadata as grouped JSON.

One exiftool process is started lazily and kept open (``-stay_open``), so a
warm Lambda or a CLI run over many files pays Perl's start-up once. When
exiftool is missing or fails, the conversion still completes: the record says
why the metadata is partial and carries libvips' own EXIF fields instead.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import exiftool
import pyvips

log = logging.getLogger(__name__)

_ARGS = ["-G", "-struct"]  # family-0 groups, structured XMP; exiftool -j already types numbers
_lock = threading.Lock()
_helpers: dict[str, exiftool.ExifToolHelper] = {}


def read_embedded(path: Path, executable: str) -> tuple[dict[str, Any], str | None]:
    """(exiftool's grouped tags, None) or ({}, the reason they are missing)."""
    if shutil.which(executable) is None:
        return {}, f"exiftool not found ({executable!r}); metadata is limited to libvips' EXIF fields"
    try:
        with _lock:
            tags = _helper(executable).get_metadata(str(path))[0]
    except Exception as error:  # exiftool's failures come in many types; each means "partial"
        _discard(executable)
        return {}, f"exiftool failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    tags.pop("SourceFile", None)
    tags.pop("File:Directory", None)
    tags.pop("File:FileName", None)
    return tags, None


def vips_fields(image: pyvips.Image) -> dict[str, Any]:
    """libvips' own view of the EXIF, as the fallback when exiftool is unavailable."""
    fields = {}
    for name in image.get_fields():
        if name.startswith("exif-ifd") or name in ("xres", "yres", "resolution-unit", "orientation"):
            value = image.get(name)
            fields[name] = value if isinstance(value, (int, float, str)) else str(value)
    return fields


def _helper(executable: str) -> exiftool.ExifToolHelper:
    helper = _helpers.get(executable)
    if helper is None or not helper.running:
        helper = exiftool.ExifToolHelper(executable=executable, common_args=_ARGS)
        helper.run()
        _helpers[executable] = helper
    return helper


def _discard(executable: str) -> None:
    helper = _helpers.pop(executable, None)
    if helper is not None:
        try:
            helper.terminate()
        except Exception:  # already dead: nothing to clean up
            log.debug("exiftool helper was already gone")


@atexit.register
def _close_all() -> None:
    for executable in list(_helpers):
        _discard(executable)
