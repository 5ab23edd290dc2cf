"""``info.json`` for both services (the static level-0 files and the dynamic level-2 endpoint), in Image API 3.0
and 2.1. Where an image has both versions, each document names the other in ``service``, so a client can pick."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.iiif.grid import declared_sizes, max_size, scale_factors
from app.iiif.request import Limits

CONTEXT = "http://iiif.io/api/image/3/context.json"
LEVEL2_PROFILE = "http://iiif.io/api/image/3/level2.json"
CONTEXT_2 = "http://iiif.io/api/image/2/context.json"
LEVEL0_PROFILE_2 = "http://iiif.io/api/image/2/level0.json"
LEVEL2_PROFILE_2 = "http://iiif.io/api/image/2/level2.json"
# Beyond what 2.1's level2.json lists (sizeAboveFull: a 2.1 size may upscale without ^).
EXTRA_FEATURES_2 = [
    "canonicalLinkHeader",
    "mirroring",
    "profileLinkHeader",
    "regionSquare",
    "rotationArbitrary",
    "sizeAboveFull",
]
EXTRA_QUALITIES = ["color", "gray", "bitonal"]
EXTRA_FORMATS = ["tif", "webp"]
EXTRA_FEATURES = ["canonicalLinkHeader", "mirroring", "profileLinkHeader", "rotationArbitrary", "sizeUpscaling"]


def level0(
    service_id: str, width: int, height: int, tile_size: int, bound: int, v2_service: str | None = None
) -> dict[str, Any]:
    """The static service; ``maxWidth`` appears only when full/max is smaller than the image (see ``_max_box``).
    ``v2_service`` is the image's 2.1 service, where one is published."""
    info = _common(service_id, "level0", width, height)
    info.update(_max_box(width, height, bound))
    info["sizes"] = _sizes(width, height, bound)
    info["tiles"] = [{"width": tile_size, "height": tile_size, "scaleFactors": scale_factors(width, height, tile_size)}]
    if v2_service:
        info["service"] = [{"@id": v2_service, "@type": "ImageService2", "profile": LEVEL0_PROFILE_2}]
    return info


def level0_v2(
    service_id: str, width: int, height: int, tile_size: int, bound: int, v3_service: str | None = None
) -> dict[str, Any]:
    """The static service in Image API 2.1: the same tiles and sizes as ``level0``, 2.1's vocabulary (the limits
    go in the profile's description). ``v3_service`` is the image's 3.0 service, where one is published."""
    description: dict[str, Any] = {"formats": ["jpg"], "qualities": ["default"], **_max_box(width, height, bound)}
    info = _common_v2(service_id, LEVEL0_PROFILE_2, description, width, height)
    info["sizes"] = _sizes(width, height, bound)
    info["tiles"] = [{"width": tile_size, "height": tile_size, "scaleFactors": scale_factors(width, height, tile_size)}]
    if v3_service:
        info["service"] = [{"@context": CONTEXT, "id": v3_service, "type": "ImageService3", "profile": "level0"}]
    return info


def _max_box(width: int, height: int, bound: int) -> dict[str, int]:
    """``maxWidth`` of a bounded full/max: its longest side, and no ``maxHeight``, which clients then take to be the
    same. The square box holds full/max whichever way the image lies, and every tile: declaring full/max's own
    height would tell clients not to expect a panorama's 512 px tiles taller than it (a 5000x1100 image's full/max
    is 1250x275)."""
    _, max_w, max_h = max_size(width, height, bound)
    return {} if (max_w, max_h) == (width, height) else {"maxWidth": max(max_w, max_h)}


def level2(
    service_id: str,
    pages: Sequence[tuple[int, int]],
    limits: Limits,
    v2_service: str | None = None,
    tile_size: int = 512,
) -> dict[str, Any]:
    """The dynamic service: its limits, the pyramid's levels as cheap sizes, its tiles, what goes beyond
    level 2. ``pages`` are the levels' sizes, full resolution first; ``v2_service`` its 2.1 twin."""
    width, height = pages[0]
    sizes = [
        {"width": w, "height": h}
        for w, h in reversed(pages)
        if w <= limits.max_width and h <= limits.max_height and w * h <= limits.max_area
    ]
    edge = tile_size
    twin = [{"@id": v2_service, "@type": "ImageService2", "profile": LEVEL2_PROFILE_2}] if v2_service else []
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
        **({"service": twin} if twin else {}),
    }


def level2_v2(
    service_id: str, pages: Sequence[tuple[int, int]], limits: Limits, v3_service: str, tile_size: int = 512
) -> dict[str, Any]:
    """The dynamic service in Image API 2.1: what ``level2`` says, in 2.1's vocabulary; names its 3.0 twin."""
    three = level2(service_id, pages, limits, tile_size=tile_size)
    description = {
        "formats": ["jpg", "png", *EXTRA_FORMATS],
        "qualities": ["default", *EXTRA_QUALITIES],
        "maxWidth": limits.max_width,
        "maxHeight": limits.max_height,
        "maxArea": limits.max_area,
        "supports": EXTRA_FEATURES_2,
    }
    return {
        **_common_v2(service_id, LEVEL2_PROFILE_2, description, three["width"], three["height"]),
        "sizes": three["sizes"],
        "tiles": three["tiles"],
        "service": [{"@context": CONTEXT, "id": v3_service, "type": "ImageService3", "profile": "level2"}],
    }


def _sizes(width: int, height: int, bound: int) -> list[dict[str, int]]:
    return [{"width": w, "height": h} for _, w, h in reversed(declared_sizes(width, height, bound))]


def _common_v2(service_id: str, profile: str, description: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    return {
        "@context": CONTEXT_2,
        "@id": service_id,
        "protocol": "http://iiif.io/api/image",
        "width": width,
        "height": height,
        "profile": [profile, description],
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
