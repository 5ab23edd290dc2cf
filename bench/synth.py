"""Synthetic photo-like JPEGs for the benchmark (``tooling.synth``), generated once and cached.

The pipeline is built lazily and consumed by ``jpegsave``, so libvips streams
it strip by strip and never holds the decoded image: the 430 MP image would
need 1.3 GB otherwise. Generation runs in a child process (``python
bench/synth.py OUT WIDTH HEIGHT``) so the benchmark can show its peak RSS as
proof of streaming and the runner itself stays small.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: python bench/synth.py ...
from tooling.synth import photo_like  # noqa: E402

QUALITY = 90
EXIF = (
    "-Make=BenchCam",
    "-Model=B1",
    "-DateTimeOriginal=2024:01:02 03:04:05",
    "-Artist=bench/synth.py",
    "-ImageDescription=Synthetic benchmark image",
)


def generate(path: Path, width: int, height: int, seed: int = 1) -> None:
    """Write the JPEG to a temporary name, tag it, then rename: an interrupted run leaves no bad cache."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    photo_like(width, height, seed).jpegsave(str(partial), Q=QUALITY)
    add_exif(partial)
    partial.replace(path)


def add_exif(path: Path) -> bool:
    """Give metadata extraction something to read; optional, as the conversion works without exiftool."""
    if shutil.which("exiftool") is None:
        return False
    subprocess.run(["exiftool", "-q", "-overwrite_original", *EXIF, str(path)], check=True)
    return True


if __name__ == "__main__":
    out, w, h = sys.argv[1:4]
    generate(Path(out), int(w), int(h))
