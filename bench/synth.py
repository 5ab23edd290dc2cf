"""Synthetic photo-like JPEGs for the benchmark, generated once and cached.

Flat colour would flatter every JPEG stage (tiny tiles, trivial entropy
coding), so the images mix Perlin noise at several scales per band with
Gaussian grain: JPEG then has to work about as hard as on a real photo.

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

QUALITY = 90
# Per band: (cell size, weight) of the Perlin layers. Different sizes per band
# keep the bands from being copies of each other (real photos have colour).
LAYERS = (
    ((701, 0.55), (97, 0.30), (13, 0.15)),
    ((509, 0.55), (71, 0.30), (11, 0.15)),
    ((883, 0.55), (53, 0.30), (7, 0.15)),
)
CONTRAST = 2.0  # averaged Perlin layers cluster around mid-grey; stretch them to a photo's tonal range
GRAIN_SIGMA = 12
EXIF = ("-Make=BenchCam", "-Model=B1", "-DateTimeOriginal=2024:01:02 03:04:05",
        "-Artist=bench/synth.py", "-ImageDescription=Synthetic benchmark image")


def photo_like(width: int, height: int, seed: int = 1):
    """A lazy libvips pipeline for a ``width`` x ``height`` 8-bit sRGB photo-like image."""
    import pyvips

    bands = []
    for band, layers in enumerate(LAYERS):
        mix = None
        for layer, (cell, weight) in enumerate(layers):
            noise = pyvips.Image.perlin(width, height, cell_size=cell, uchar=True, seed=seed + 10 * band + layer)
            mix = noise * weight if mix is None else mix + noise * weight
        bands.append((mix - 128) * CONTRAST + 128)
    grain = pyvips.Image.gaussnoise(width, height, sigma=GRAIN_SIGMA, mean=0, seed=seed + 100)
    image = bands[0].bandjoin(bands[1:]) + grain  # the same grain in every band, like luminance noise
    return image.cast("uchar").copy(interpretation="srgb")


def generate(path: Path, width: int, height: int) -> None:
    """Write the JPEG to a temporary name, tag it, then rename: an interrupted run leaves no bad cache."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    photo_like(width, height).jpegsave(str(partial), Q=QUALITY)
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
