"""Dominant colours of an image, from its smallest pyramid level: no extra decode of the source.

Pixels are binned coarsely, then bins closer than a perceptual-ish distance
are merged greedily, most common first. Deterministic and dependency-free.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyvips

SAMPLE_EDGE = 64  # the pyramid level used has its longest side at most this
BIN = 16  # levels per bin and channel: finer than MERGE_DISTANCE, so merging decides, not binning
MERGE_DISTANCE = 40.0


def dominant_colours(dz_files: Path, count: int = 6) -> list[dict[str, Any]]:
    """[{"hex": "#rrggbb", "share": 0.31}, ...], most dominant first, from a Deep Zoom ``_files`` folder."""
    pixels = _sample(dz_files)
    bins = Counter(tuple(channel // BIN for channel in pixel) for pixel in pixels)
    clusters: list[list[float]] = []  # [r, g, b, weight]
    for key, weight in bins.most_common():
        colour = tuple(level * BIN + BIN // 2 for level in key)
        near = next((c for c in clusters if _distance(c, colour) < MERGE_DISTANCE), None)
        if near is None:
            clusters.append([*colour, weight])
            continue
        total = near[3] + weight
        near[:3] = [(near[i] * near[3] + colour[i] * weight) / total for i in range(3)]
        near[3] = total
    clusters.sort(key=lambda c: -c[3])
    return [
        {"hex": "#{:02x}{:02x}{:02x}".format(*(round(v) for v in c[:3])), "share": round(c[3] / len(pixels), 3)}
        for c in clusters[:count]
    ]


def _sample(dz_files: Path) -> list[tuple[int, ...]]:
    levels = sorted((int(p.name) for p in dz_files.iterdir() if p.name.isdigit()), reverse=True)
    for level in levels:  # the largest level that is still a single small tile
        tile = pyvips.Image.new_from_file(str(dz_files / str(level) / "0_0.jpg"))
        if max(tile.width, tile.height) <= SAMPLE_EDGE:
            data = (
                tile.extract_band(0, n=3).write_to_memory()
                if tile.bands >= 3
                else tile.colourspace("srgb").write_to_memory()
            )
            return [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]
    raise ValueError(f"no level of {dz_files} is {SAMPLE_EDGE} px or smaller")


def _distance(a: list[float] | tuple[int, ...], b: tuple[int, ...]) -> float:
    """Red-mean weighted RGB distance: cheap and closer to perception than plain Euclid."""
    mean_red = (a[0] + b[0]) / 2
    dr, dg, db = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return ((2 + mean_red / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean_red) / 256) * db * db) ** 0.5
