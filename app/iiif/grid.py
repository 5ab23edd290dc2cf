"""The tile pyramid's arithmetic: levels, tile regions, scale factors, declared sizes.

Pure functions of the image size and tile size, no pixels. The Deep Zoom
pyramid halves each level rounding up, so Deep Zoom level ``max - k`` is
exactly IIIF scale factor ``2**k``, tile for tile: one encoded tile serves both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from app.iiif.paths import level0_path


@dataclass(frozen=True)
class Tile:
    """One tile of the pyramid in both addressings."""

    dz_level: int
    col: int
    row: int
    region: tuple[int, int, int, int]  # x, y, w, h in full-resolution pixels
    size: tuple[int, int]  # pixels actually in the tile

    def dz_path(self, image_id: str) -> str:
        return f"{image_id}_files/{self.dz_level}/{self.col}_{self.row}.jpg"


def max_dz_level(width: int, height: int) -> int:
    """Deep Zoom's top level: levels go down to 1x1."""
    return math.ceil(math.log2(max(width, height))) if max(width, height) > 1 else 0


def level_size(width: int, height: int, scale: int) -> tuple[int, int]:
    return -(-width // scale), -(-height // scale)


def scale_factors(width: int, height: int, tile_size: int) -> list[int]:
    """1, 2, 4 ... up to the first level that fits in a single tile."""
    factors = [1]
    while max(level_size(width, height, factors[-1])) > tile_size:
        factors.append(factors[-1] * 2)
    return factors


def tiles(width: int, height: int, tile_size: int) -> Iterator[Tile]:
    """Every tile at every declared scale factor."""
    top = max_dz_level(width, height)
    for scale in scale_factors(width, height, tile_size):
        level_w, level_h = level_size(width, height, scale)
        span = tile_size * scale
        for row in range(-(-level_h // tile_size)):
            for col in range(-(-level_w // tile_size)):
                x, y = col * span, row * span
                region = (x, y, min(span, width - x), min(span, height - y))
                size = (min(tile_size, level_w - col * tile_size), min(tile_size, level_h - row * tile_size))
                yield Tile(top - int(math.log2(scale)), col, row, region, size)


def tile_of(
    region: tuple[int, int, int, int], size: tuple[int, int], width: int, height: int, tile_size: int
) -> Tile | None:
    """The tile of the pyramid that ``region`` at ``size`` is exactly (a static level-0 file), if any."""
    top = max_dz_level(width, height)
    for scale in scale_factors(width, height, tile_size):
        span = tile_size * scale
        x, y = region[:2]
        if x % span or y % span:
            continue
        level_w, level_h = level_size(width, height, scale)
        col, row = x // span, y // span
        expected = (x, y, min(span, width - x), min(span, height - y))
        pixels = (min(tile_size, level_w - col * tile_size), min(tile_size, level_h - row * tile_size))
        if region == expected and size == pixels:
            return Tile(top - int(math.log2(scale)), col, row, region, size)
    return None


def image_path(
    image_id: str,
    width: int,
    height: int,
    region: tuple[int, int, int, int],
    size: tuple[int, int],
    version: int = 3,
) -> str:
    """The level-0 path of a tile or size, as OpenSeadragon and Mirador request it from that version's service."""
    return level0_path(version, image_id, width, height, region, size)


def max_size(width: int, height: int, bound: int) -> tuple[int, int, int]:
    """(scale, w, h) of the largest pyramid level whose longest side is within ``bound``."""
    scale = 1
    while max(level_size(width, height, scale)) > bound:
        scale *= 2
    return (scale, *level_size(width, height, scale))


def declared_sizes(width: int, height: int, bound: int, smallest: int = 64) -> list[tuple[int, int, int]]:
    """(scale, w, h) of the full-image sizes we publish, largest first, down to ``smallest`` px."""
    scale, w, h = max_size(width, height, bound)
    sizes = [(scale, w, h)]
    while max(sizes[-1][1:]) // 2 >= smallest:
        scale *= 2
        sizes.append((scale, *level_size(width, height, scale)))
    return sizes


def thumbnail_size(width: int, height: int, bound: int, at_least: int = 200) -> tuple[int, int]:
    """The smallest declared size at least ``at_least`` px across (or the largest, for small images)."""
    sizes = declared_sizes(width, height, bound)
    _, w, h = next((size for size in reversed(sizes) if max(size[1:]) >= at_least), sizes[0])
    return w, h
