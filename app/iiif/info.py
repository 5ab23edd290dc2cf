"""``info.json`` for both services: the static level-0 files and the dynamic level-2 endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.iiif import serving
from app.iiif.grid import declared_sizes, max_size, scale_factors
from app.iiif.request import Limits

CONTEXT = "http://iiif.io/api/image/3/context.json"
LEVEL2_PROFILE = "http://iiif.io/api/image/3/level2.json"
EXTRA_QUALITIES = ["color", "gray", "bitonal"]
EXTRA_FORMATS = ["tif", "webp"]
EXTRA_FEATURES = ["canonicalLinkHeader", "mirroring", "profileLinkHeader", "rotationArbitrary", "sizeUpscaling"]


def level0(service_id: str, width: int, height: int, tile_size: int, bound: int) -> dict[str, Any]:
    """The static service; maxWidth/maxHeight appear only when full/max is smaller than the image."""
    _, max_w, max_h = max_size(width, height, bound)
    info = _common(service_id, "level0", width, height)
    if (max_w, max_h) != (width, height):
        info.update(maxWidth=max_w, maxHeight=max_h)
    info["sizes"] = [{"width": w, "height": h} for _, w, h in reversed(declared_sizes(width, height, bound))]
    info["tiles"] = [{"width": tile_size, "height": tile_size, "scaleFactors": scale_factors(width, height, tile_size)}]
    return info


def level2(service_id: str, pages: Sequence[tuple[int, int]], limits: Limits) -> dict[str, Any]:
    """The dynamic service: its limits, the serving TIFF's pages as cheap sizes, its tiles, what goes beyond
    level 2. ``pages`` are the TIFF's page sizes, full resolution first."""
    width, height = pages[0]
    sizes = [
        {"width": w, "height": h}
        for w, h in reversed(pages)
        if w <= limits.max_width and h <= limits.max_height and w * h <= limits.max_area
    ]
    edge = serving.TILE_SIZE
    return {
        **_common(service_id, "level2", width, height),
        "maxWidth": limits.max_width,
        "maxHeight": limits.max_height,
        "maxArea": limits.max_area,
        "sizes": sizes,
        "tiles": [{"width": edge, "height": edge, "scaleFactors": scale_factors(width, height, edge)}],
        "extraQualities": EXTRA_QUALITIES,
        "extraFormats": EXTRA_FORMATS,
        "extraFeatures": EXTRA_FEATURES,
    }


def _common(service_id: str, profile: str, width: int, height: int) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": service_id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": profile,
        "width": width,
        "height": height,
    }
