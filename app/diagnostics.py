"""What the deployed function can report about itself, for ``python -m app doctor``.

The doctor invokes the function with ``{"command": "app.diagnostics.report"}``:
Zappa's handler runs any function named that way (it is how ``zappa invoke``
works), so nothing needs wiring. The report runs exiftool through the very code
the conversion uses, on a tiny image made here, and names the buckets and limits
the function actually sees; no secret setting is ever included.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyvips

from app.pipeline import metadata
from config import Settings

MARKER = "tiler-diagnostics/1"  # the doctor trusts only answers that carry it
SHOWN = (
    "source_bucket",
    "tiles_bucket",
    "metadata_bucket",
    "batch_job_queue",
    "batch_job_definition",
    "lambda_max_bytes",
    "lambda_max_pixels",
    "exiftool_path",
)


def report(event: Any = None, context: Any = None) -> dict[str, Any]:
    settings = Settings.from_env()
    return {
        "marker": MARKER,
        "exiftool": exiftool_check(settings.exiftool_path),
        "settings": {name: getattr(settings, name) for name in SHOWN},
        "memory_mb": int(getattr(context, "memory_limit_in_mb", 0) or 0),
    }


def exiftool_check(executable: str) -> dict[str, Any]:
    """{"ok": True, "version": ...} when exiftool reads a real JPEG's tags here, else {"ok": False, "error": ...}."""
    with tempfile.TemporaryDirectory(prefix="tiler-diagnostics-") as folder:
        probe = Path(folder) / "probe.jpg"
        pyvips.Image.black(16, 16).write_to_file(str(probe))
        try:
            tags, missing = metadata.collect(metadata.read_embedded_soon(probe, executable), executable, timeout=60)
        except Exception as error:  # the report must come back whatever broke; the doctor shows the reason
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    if missing:
        return {"ok": False, "error": missing}
    version = tags.get("ExifTool:ExifToolVersion")
    if version is None:
        return {"ok": False, "error": "exiftool answered without its version tag"}
    return {"ok": True, "version": str(version)}
