"""Render one IIIF image request from an image pyramid, on demand.

The pyramid's pages are the image at successive halvings (the published Deep
Zoom levels), so a request is served from the smallest page that still has at
least the pixels the output needs: a tile or a thumbnail of a gigapixel image
decodes a few tiles, never the full image. The work per request is bounded by
the output size (itself bounded by the advertised limits), whatever the
image's size.

Source-agnostic: pixels come from a ``crop(page, box)`` callable (the
published tiles on S3 for the endpoint, the staged tiles for named
derivatives; ``app.storage.tile_pyramid``), as image servers keep processors
apart from sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from app.iiif.request import Plan

Crop = Callable[[int, tuple[int, int, int, int]], pyvips.Image]  # (page, (left, top, width, height)) -> pixels
DECODE_BUDGET = 4  # decode at most ~4x the output's pixels (plus a tile), choosing a smaller page if needed
_TILE_AREA = 512**2
_ALPHA_FORMATS = ("png", "webp", "tif")


@dataclass(frozen=True)
class Pyramid:
    """(width, height) of each page, full resolution first."""

    pages: tuple[tuple[int, int], ...]

    @property
    def width(self) -> int:
        return self.pages[0][0]

    @property
    def height(self) -> int:
        return self.pages[0][1]


def choose_page(pyramid: Pyramid, region: tuple[int, int, int, int], size: tuple[int, int]) -> int:
    """The smallest page that still holds ``size`` pixels of ``region`` (within a pixel of rounding).

    If that page would still decode far more than the output needs (a squashed
    ``w,h`` such as 4000,1), a smaller page is taken: quality yields to bounded work.
    """
    _, _, w, h = region
    chosen = 0
    for index, (page_w, page_h) in enumerate(pyramid.pages):
        if w * page_w / pyramid.width + 1 < size[0] or h * page_h / pyramid.height + 1 < size[1]:
            break
        chosen = index
    budget = DECODE_BUDGET * (size[0] * size[1] + _TILE_AREA)
    while chosen + 1 < len(pyramid.pages) and _crop_area(pyramid, chosen, region) > budget:
        chosen += 1
    return chosen


def page_crop(pyramid: Pyramid, index: int, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``region`` (full-resolution pixels) on page ``index``: outward-rounded, at least one pixel, inside the page."""
    page_w, page_h = pyramid.pages[index]
    sx, sy = page_w / pyramid.width, page_h / pyramid.height
    x, y, w, h = region
    left, top = min(page_w - 1, math.floor(x * sx)), min(page_h - 1, math.floor(y * sy))
    right, bottom = min(page_w, math.ceil((x + w) * sx)), min(page_h, math.ceil((y + h) * sy))
    return left, top, max(1, right - left), max(1, bottom - top)


def _crop_area(pyramid: Pyramid, index: int, region: tuple[int, int, int, int]) -> int:
    _, _, w, h = page_crop(pyramid, index, region)
    return w * h


def render(plan: Plan, pyramid: Pyramid, crop: Crop, jpeg_quality: int = 85) -> bytes:
    """The encoded image for ``plan``, in the order of the IIIF specification (Image API 3.0, "Order of
    Implementation"): region, size, rotation (mirror first), quality, then the format."""
    image = crop(*source_box(plan, pyramid))
    image = _exact_size(_flattened(image), *plan.size)
    image = _oriented(image, plan.mirror, plan.rotation, transparent=plan.format in _ALPHA_FORMATS)
    image = _with_quality(image, plan.quality)  # last, as the specification orders: a rotation interpolates
    return encode(image, plan.format, jpeg_quality, bitonal=plan.quality == "bitonal")


def source_box(plan: Plan, pyramid: Pyramid) -> tuple[int, tuple[int, int, int, int]]:
    """(page, box on that page): the pixels ``render`` reads for ``plan``, so a caller can fetch them early."""
    index = choose_page(pyramid, plan.region, plan.size)
    return index, page_crop(pyramid, index, plan.region)


def _flattened(image: pyvips.Image) -> pyvips.Image:
    """8-bit, no alpha: what the quality and encoding steps expect (published tiles are already so)."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    return image.cast("uchar") if image.format != "uchar" else image


def _exact_size(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """Resize to exactly width x height (IIIF sizes are exact; libvips rounds, so trim or extend the last pixel)."""
    if (image.width, image.height) != (width, height):
        image = image.resize(width / image.width, vscale=height / image.height)
    if image.width > width or image.height > height:
        image = image.crop(0, 0, min(width, image.width), min(height, image.height))
    if image.width < width or image.height < height:
        image = image.embed(0, 0, width, height, extend="copy")
    return image


def _with_quality(image: pyvips.Image, quality: str) -> pyvips.Image:
    if quality in ("gray", "bitonal") and image.bands > 1:
        image = image.colourspace("b-w")
    if quality == "bitonal":  # uchar 0 or 255; an alpha band (a rotation's transparent corners) is kept
        image = (image[0] >= 128).bandjoin(image[1]) if image.hasalpha() else image >= 128
    return image


def _oriented(image: pyvips.Image, mirror: bool, degrees: float, transparent: bool) -> pyvips.Image:
    """Mirror, then rotate clockwise; corners uncovered by an arbitrary angle are transparent, or white in JPEG."""
    if mirror:
        image = image.fliphor()
    if degrees in (90.0, 180.0, 270.0):
        return {90.0: image.rot90, 180.0: image.rot180, 270.0: image.rot270}[degrees]()
    if degrees == 0:
        return image
    if transparent:
        image = image.bandjoin(255)
        return image.rotate(degrees, background=[0] * image.bands)
    return image.rotate(degrees, background=[255] * image.bands)


def encode(image: pyvips.Image, fmt: str, jpeg_quality: int, bitonal: bool = False) -> bytes:
    """Encode without metadata (published tiles' pixels are sRGB already)."""
    if fmt == "jpg":
        return image.jpegsave_buffer(Q=jpeg_quality, keep="none", optimize_coding=True)
    if fmt == "png":
        return image.pngsave_buffer(keep="none", **({"bitdepth": 1} if bitonal and image.bands == 1 else {}))
    if fmt == "webp":
        return image.webpsave_buffer(Q=jpeg_quality, keep="none")
    if fmt == "tif":
        return image.tiffsave_buffer(compression="deflate", predictor="horizontal", keep="none")
    raise ValueError(f"no encoder for {fmt}")
