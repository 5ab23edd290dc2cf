"""Small JPEG work beside libvips: a pyramid level's tiles stitched into one full-image size, a tile's pixels.

libvips runs every operation through its thread pool and region machinery:
right for tiling a whole image, but for a few 512-px tiles that overhead
outweighs the decoding (a page's two stitched sizes took about 50 ms of CPU
through libvips, 20 ms here). imagecodecs calls the same libjpeg-turbo
directly, on the calling thread and without the GIL. Encoded with libvips'
settings for the tiles (its quality tables, chroma subsampling below quality
90 only), a size holds exactly the pixels libvips would have written.

numpy and imagecodecs (about 0.1 s) are imported on first use, or in the
background while a conversion tiles (``warm_up``): the web app imports the
pipeline but never calls this.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.pipeline import background

if TYPE_CHECKING:
    import numpy

FULL_CHROMA_FROM_QUALITY = 90  # libvips' jpegsave keeps full chroma from this quality up (its "auto" mode)


def warm_up() -> None:
    """Import numpy and imagecodecs in the background, unless done: a conversion needs them once it has tiled."""
    if "imagecodecs" not in sys.modules:
        background.soon(_codecs, "codecs-import")


def stitched(level_dir: Path, width: int, height: int, tile_size: int, quality: int) -> bytes:
    """The Deep Zoom level in ``level_dir`` (``col_row.jpg`` tiles) as one JPEG of ``width`` x ``height``, with
    optimised Huffman tables (about 5% smaller than the tiles' standard ones, the same pixels)."""
    imagecodecs, numpy = _codecs()
    pixels = numpy.empty((height, width, 3), numpy.uint8)
    for top in range(0, height, tile_size):
        for left in range(0, width, tile_size):
            tile = pixels_of(level_dir / f"{left // tile_size}_{top // tile_size}.jpg")
            pixels[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    subsampling = "444" if quality >= FULL_CHROMA_FROM_QUALITY else "420"
    return imagecodecs.jpeg8_encode(pixels, level=quality, optimize=True, subsampling=subsampling)


def pixels_of(tile: Path) -> numpy.ndarray:
    """A tile's pixels, height x width x 3 (the tiles are 8-bit sRGB)."""
    imagecodecs, _ = _codecs()
    return imagecodecs.jpeg8_decode(tile.read_bytes())


def _codecs():
    import imagecodecs
    import numpy

    return imagecodecs, numpy
