"""Dominant colours of an image, from its smallest pyramid level: no extra decode of the source.

Pixels are binned coarsely. The most common bin leads a cluster of every bin
within a perceptual-ish distance of it, then the most common bin left leads
the next, and so on; a cluster's colour is its bins' mean, weighted by their
pixels. Deterministic (ties go by colour), and vectorised with numpy: a loop
per bin in Python took longer than a page's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.iiif import grid
from app.pipeline import jpeg

if TYPE_CHECKING:
    import numpy

SAMPLE_EDGE = 64  # the pyramid level used has its longest side at most this
BIN = 16  # levels per bin and channel: finer than MERGE_DISTANCE, so merging decides, not binning
MERGE_DISTANCE = 40.0


def dominant_colours(dz_files: Path, width: int, height: int, count: int = 6) -> list[dict[str, Any]]:
    """[{"hex": "#rrggbb", "share": 0.31}, ...], most dominant first, from the Deep Zoom ``_files`` folder of an
    image of ``width`` x ``height``."""
    import numpy

    pixels = _sample(dz_files, width, height).reshape(-1, 3)
    levels = 256 // BIN
    bins = (pixels // BIN).astype(numpy.int64) @ numpy.array([levels * levels, levels, 1])
    counts = numpy.bincount(bins, minlength=levels**3)
    present = numpy.flatnonzero(counts)
    order = present[numpy.argsort(-counts[present], kind="stable")]  # most common first, ties by colour
    centres = numpy.stack([order // (levels * levels), order // levels % levels, order % levels], axis=1)
    colours, weights = centres * BIN + BIN // 2, counts[order]
    left = numpy.ones(len(order), dtype=bool)
    clusters = []  # (colour, weight)
    for leader in range(len(order)):
        if not left[leader]:
            continue
        members = left & (_distance(colours, colours[leader]) < MERGE_DISTANCE)
        left &= ~members
        weight = weights[members].sum()
        clusters.append((weights[members] @ colours[members] / weight, weight))
    clusters.sort(key=lambda cluster: -cluster[1])
    return [
        {
            "hex": "#{:02x}{:02x}{:02x}".format(*(round(float(v)) for v in colour)),
            "share": round(float(weight) / len(pixels), 3),
        }
        for colour, weight in clusters[:count]
    ]


def _sample(dz_files: Path, width: int, height: int) -> numpy.ndarray:
    """The pixels of the largest Deep Zoom level whose longest side is at most ``SAMPLE_EDGE``: a single tile."""
    scale = 1
    while max(grid.level_size(width, height, scale)) > SAMPLE_EDGE:
        scale *= 2
    level = grid.max_dz_level(width, height) - scale.bit_length() + 1
    return jpeg.pixels_of(dz_files / str(level) / "0_0.jpg")


def _distance(colours: numpy.ndarray, colour: numpy.ndarray) -> numpy.ndarray:
    """Red-mean weighted RGB distance of each of ``colours`` to ``colour``: cheap, and closer to perception than
    plain Euclid."""
    mean_red = (colours[:, 0] + colour[0]) / 2
    dr, dg, db = (colours - colour).T
    return ((2 + mean_red / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean_red) / 256) * db * db) ** 0.5
