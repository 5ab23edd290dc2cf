"""The serving TIFF: what the pipeline writes for the dynamic endpoint and the endpoint expects to read.

A tiled pyramidal TIFF per image, JPEG-compressed sRGB, at a fixed key in the
tiles bucket (private: full resolution). Tiles of ``TILE_SIZE`` cost the
fewest ranged reads for the 512-pixel requests viewers make.
"""

from __future__ import annotations

PREFIX = "derivatives/"
TILE_SIZE = 512


def key(image_id: str) -> str:
    return f"{PREFIX}{image_id}.tif"
