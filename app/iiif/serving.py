"""The serving TIFF (``SERVING_TIFF``, off by default): a pyramidal TIFF for another IIIF server to read.

A tiled pyramidal TIFF per image, JPEG-compressed sRGB, at a fixed key in the
tiles bucket (private: full resolution), the input an image server such as
serverless-iiif expects. This service's own dynamic endpoint renders from the
published Deep Zoom tiles instead (``app.storage.tile_pyramid``).
"""

from __future__ import annotations

PREFIX = "derivatives/"
TILE_SIZE = 512


def key(image_id: str) -> str:
    return f"{PREFIX}{image_id}.tif"
