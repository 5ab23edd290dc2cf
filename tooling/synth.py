"""The one synthetic photo-like image of the project: the demo's samples, the tests' images, the benchmark's.

Flat colour would flatter every JPEG stage (tiny tiles, trivial entropy
coding), so the images mix Perlin noise at several scales per band with
Gaussian grain: JPEG then has to work about as hard as on a real photo. The
pipeline is lazy, so a consumer such as ``jpegsave`` streams it strip by strip
and never holds the decoded image.
"""

from __future__ import annotations

import pyvips

# Per band: (cell size, weight) of the Perlin layers. Different sizes per band
# keep the bands from being copies of each other (real photos have colour).
LAYERS = (
    ((701, 0.55), (97, 0.30), (13, 0.15)),
    ((509, 0.55), (71, 0.30), (11, 0.15)),
    ((883, 0.55), (53, 0.30), (7, 0.15)),
)
CONTRAST = 2.0  # averaged Perlin layers cluster around mid-grey; stretch them to a photo's tonal range
GRAIN_SIGMA = 12


def photo_like(width: int, height: int, seed: int = 1):
    """A lazy libvips pipeline for a ``width`` x ``height`` 8-bit sRGB photo-like image."""
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
