"""IIIF Image API image requests (3.0, and 2.1): the grammar of region/size/rotation/quality.format, its arithmetic.

Pure: strings and integers in, a ``Plan`` (pixel region, output size,
canonical path) out; no pixels, no S3, no Flask. Every number is matched by an
ASCII regular expression of bounded length before it is converted, because
Python's ``int()``/``float()`` also accept ``1_000``, ``nan``, ``1e9`` and
non-ASCII digits. Every refusal is a ``RequestError`` carrying its HTTP status,
and the output size is checked against the advertised limits before a single
pixel is decoded, so no request can ask for unbounded work.

Both versions resolve to the same ``Plan``, so one renderer serves both; only
the size grammar (2.1 has ``full`` and no ``^``: any size may upscale) and the
canonical form differ.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from app.iiif.paths import canonical, canonical2

QUALITIES = ("default", "color", "gray", "bitonal")
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "tif": "image/tiff"}
UNIMPLEMENTED_FORMATS = ("gif", "jp2", "pdf")  # valid IIIF formats this server does not produce: 501
MAX_PARAMETER_LENGTH = 64

_INT = r"[0-9]{1,9}"
_NUMBER = r"[0-9]{1,9}(?:\.[0-9]{1,9})?"
_PIXELS = re.compile(rf"({_INT}),({_INT}),({_INT}),({_INT})")
_PERCENT = re.compile(rf"pct:({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})")
_SIZE = re.compile(rf"(\^)?(?:(max)|pct:({_NUMBER})|({_INT}),|,({_INT})|(!)?({_INT}),({_INT}))")
_ROTATION = re.compile(rf"(!)?({_NUMBER})")


class RequestError(Exception):
    """A request this server refuses; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    status = 400


class Forbidden(RequestError):
    """Beyond the advertised maxWidth/maxHeight/maxArea."""

    status = 403


class NotFound(RequestError):
    status = 404


class NotImplementedHere(RequestError):
    """A valid IIIF request for a feature this server does not offer."""

    status = 501


class Unavailable(RequestError):
    """The storage failed or the image changed mid-read: worth retrying."""

    status = 503


@dataclass(frozen=True)
class Limits:
    """The advertised maxWidth, maxHeight and maxArea of every output image."""

    max_width: int
    max_height: int
    max_area: int


@dataclass(frozen=True)
class ImageRequest:
    """The parameters as parsed; ``region``/``size`` still in request terms (percent, box ...)."""

    region: tuple  # ("full",) | ("square",) | ("pixels", x, y, w, h) | ("percent", x, y, w, h)
    size: tuple  # (upscale, kind, *values), kind in max | full (2.1) | width | height | percent | exact | fit
    mirror: bool
    rotation: float
    quality: str
    format: str


@dataclass(frozen=True)
class Plan:
    """What to render, in full-resolution pixels, and the canonical form of the request."""

    region: tuple[int, int, int, int]
    size: tuple[int, int]
    mirror: bool
    rotation: float
    quality: str
    format: str
    canonical: str  # region/size/rotation/quality.format

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def parse(region: str, size: str, rotation: str, quality: str, fmt: str, version: int = 3) -> ImageRequest:
    """Parse the five parameters of an Image API ``version`` request (3 or 2); raises BadRequest (malformed) or
    NotImplementedHere (gif, jp2, pdf)."""
    for name, value in (
        ("region", region),
        ("size", size),
        ("rotation", rotation),
        ("quality", quality),
        ("format", fmt),
    ):
        if len(value) > MAX_PARAMETER_LENGTH:
            raise BadRequest(f"{name} is too long")
    if fmt in UNIMPLEMENTED_FORMATS:
        raise NotImplementedHere(f"format {fmt} is not offered (offered: {', '.join(MEDIA_TYPES)})")
    if fmt not in MEDIA_TYPES:
        raise BadRequest(f"unknown format (offered: {', '.join(MEDIA_TYPES)})")
    if quality not in QUALITIES:
        raise BadRequest(f"unknown quality (offered: {', '.join(QUALITIES)})")
    mirror, degrees = _parse_rotation(rotation)
    sized = _parse_size(size) if version == 3 else _parse_size_v2(size)
    return ImageRequest(_parse_region(region), sized, mirror, degrees, quality, fmt)


def _parse_region(text: str) -> tuple:
    if text in ("full", "square"):
        return (text,)
    if match := _PIXELS.fullmatch(text):
        values = tuple(int(v) for v in match.groups())
        kind = "pixels"
    elif match := _PERCENT.fullmatch(text):
        values = tuple(float(v) for v in match.groups())
        kind = "percent"
    else:
        raise BadRequest("region must be full, square, x,y,w,h or pct:x,y,w,h")
    if values[2] <= 0 or values[3] <= 0:
        raise BadRequest("region width and height must be above zero")
    return (kind, *values)


def _parse_size(text: str) -> tuple:
    match = _SIZE.fullmatch(text)
    if not match:
        raise BadRequest("size must be max, w,, ,h, pct:n, w,h or !w,h, optionally after ^")
    upscale, is_max, percent, width, height, fit, box_w, box_h = match.groups()
    upscale = upscale is not None
    if is_max:
        return (upscale, "max")
    if percent is not None:
        if float(percent) <= 0:
            raise BadRequest("size percentage must be above zero")
        return (upscale, "percent", float(percent))
    if width is not None or height is not None:
        value = int(width if width is not None else height)
        if value <= 0:
            raise BadRequest("size must be above zero")
        return (upscale, "width" if width is not None else "height", value)
    if int(box_w) <= 0 or int(box_h) <= 0:
        raise BadRequest("size must be above zero")
    return (upscale, "fit" if fit else "exact", int(box_w), int(box_h))


def _parse_size_v2(text: str) -> tuple:
    """2.1's sizes: ``full`` (the region unscaled), ``max``, and 3.0's other forms with no ``^``: in 2.1 any of
    them may upscale."""
    if text == "full":
        return (True, "full")
    if text.startswith("^"):
        raise BadRequest("size must be full, max, w,, ,h, pct:n, w,h or !w,h (no ^ in Image API 2.1)")
    upscale, kind, *values = _parse_size(text)
    return (kind != "max", kind, *values)


def _parse_rotation(text: str) -> tuple[bool, float]:
    match = _ROTATION.fullmatch(text)
    if not match or not 0 <= float(match.group(2)) <= 360:
        raise BadRequest("rotation must be a number from 0 to 360, optionally after !")
    degrees = float(match.group(2))
    return match.group(1) is not None, 0.0 if degrees == 360 else degrees


def plan(request: ImageRequest, width: int, height: int, limits: Limits, version: int = 3) -> Plan:
    """Resolve ``request`` against an image of ``width`` x ``height``: BadRequest or Forbidden, or a Plan whose
    canonical path is in Image API ``version``'s form."""
    region = region_pixels(request.region, width, height)
    size, _ = output_size(request.size, region[2], region[3], limits)
    wanted = Plan(region, size, request.mirror, request.rotation, request.quality, request.format, "")
    if version == 2:
        path = canonical2(
            region, size, width, height, request.mirror, request.rotation, request.quality, request.format
        )
    else:
        path = canonical_v3(wanted, width, height, limits)
    return Plan(region, size, request.mirror, request.rotation, request.quality, request.format, path)


def canonical_v3(wanted: Plan, width: int, height: int, limits: Limits) -> str:
    """The 3.0 canonical path of a plan's pixels, whichever version asked: named derivatives are published there."""
    region, size = wanted.region, wanted.size
    return canonical(
        region,
        size,
        width,
        height,
        max_size(region[2], region[3], limits),
        size[0] > region[2] or size[1] > region[3],
        wanted.mirror,
        wanted.rotation,
        wanted.quality,
        wanted.format,
    )


def region_pixels(region: tuple, width: int, height: int) -> tuple[int, int, int, int]:
    """The region as x, y, w, h within the image; BadRequest when it lies wholly outside."""
    kind = region[0]
    if kind == "full":
        return 0, 0, width, height
    if kind == "square":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    x, y, w, h = region[1:]
    if kind == "percent":
        left, top = round(x * width / 100), round(y * height / 100)
        right, bottom = round((x + w) * width / 100), round((y + h) * height / 100)
        x, y, w, h = left, top, max(1, right - left), max(1, bottom - top)
    if x >= width or y >= height:
        raise BadRequest("region is outside the image")
    return x, y, min(w, width - x), min(h, height - y)


def output_size(size: tuple, region_w: int, region_h: int, limits: Limits) -> tuple[tuple[int, int], bool]:
    """((w, h), upscaled) for the size parameter; BadRequest for upscaling without ^, Forbidden beyond the limits."""
    upscale, kind, *values = size
    if kind == "max":
        result = max_size(region_w, region_h, limits, upscale)
    elif kind == "full":
        result = (region_w, region_h)
    elif kind == "percent":
        result = (max(1, round(region_w * values[0] / 100)), max(1, round(region_h * values[0] / 100)))
    elif kind == "width":
        result = (values[0], max(1, _scaled(region_h, values[0], region_w)))
    elif kind == "height":
        result = (max(1, _scaled(region_w, values[0], region_h)), values[0])
    elif kind == "fit":
        result = fit(region_w, region_h, *values)
    else:
        result = (values[0], values[1])
    upscaled = result[0] > region_w or result[1] > region_h
    if upscaled and not upscale:
        raise BadRequest("the size is larger than the region: upscaling needs the ^ prefix")
    if result[0] > limits.max_width or result[1] > limits.max_height or result[0] * result[1] > limits.max_area:
        raise Forbidden(
            f"{result[0]}x{result[1]} is over this server's limits (maxWidth {limits.max_width}, "
            f"maxHeight {limits.max_height}, maxArea {limits.max_area})"
        )
    return result, upscaled


def max_size(region_w: int, region_h: int, limits: Limits, upscale: bool = False) -> tuple[int, int]:
    """The largest size within the limits: the region itself, or smaller; with ``upscale``, up to the limits."""
    box_w, box_h = (
        (limits.max_width, limits.max_height)
        if upscale
        else (min(limits.max_width, region_w), min(limits.max_height, region_h))
    )
    w, h = fit(region_w, region_h, box_w, box_h)
    if w * h > limits.max_area:
        shrink = math.sqrt(limits.max_area / (w * h))
        w, h = max(1, math.floor(w * shrink)), max(1, math.floor(h * shrink))
        while w * h > limits.max_area:
            w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


def fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest width x height of the same aspect ratio inside box_w x box_h (at least 1x1)."""
    if box_w * height <= box_h * width:  # the width binds
        return box_w, min(box_h, max(1, _scaled(height, box_w, width)))
    return min(box_w, max(1, _scaled(width, box_h, height))), box_h


def _scaled(value: int, numerator: int, denominator: int) -> int:
    """round(value * numerator / denominator) in integers, exact for any size."""
    return (2 * value * numerator + denominator) // (2 * denominator)
