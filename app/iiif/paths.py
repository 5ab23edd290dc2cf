"""Canonical IIIF Image API paths (3.0 and 2.1), for the static level-0 files and the dynamic level-2 answers alike.

Both levels must agree: a named derivative made at conversion is published at
the path the dynamic endpoint would redirect the same request to, and a 2.1
request for a published tile is redirected to it.

The 3.0 service of an image is ``ID`` under the public base; the 2.1 service,
when a deployment publishes one (``IIIF_VERSIONS``), is ``iiif/2/ID`` beside
it, so both ``info.json`` files coexist and each names the other.
"""

from __future__ import annotations

Box = tuple[int, int, int, int]
VERSIONS = (2, 3)
V2_PREFIX = "iiif/2/"


def service_path(version: int, image_id: str) -> str:
    """Where an image's static service of ``version`` lives, under the public base."""
    return f"{V2_PREFIX}{image_id}" if version == 2 else image_id


def canonical(
    region: Box,
    size: tuple[int, int],
    width: int,
    height: int,
    max_size: tuple[int, int] | None = None,
    upscaled: bool = False,
    mirror: bool = False,
    rotation: float = 0.0,
    quality: str = "default",
    fmt: str = "jpg",
) -> str:
    """3.0 ``region/size/rotation/quality.format`` of an image of ``width`` x ``height``.

    ``max_size`` is what ``max`` stands for in this region (level 2: the largest size within the advertised
    limits). Without it (level 0) only the full image at full size is ``max``: viewers ask for tiles as
    ``w,h``, and those are the paths the static files must have.
    """
    region_part = _region(region, width, height)
    is_max = size == max_size if max_size is not None else region_part == "full" and size == (width, height)
    size_part = "max" if is_max else ("^" if upscaled else "") + f"{size[0]},{size[1]}"
    return f"{region_part}/{size_part}/{_rotation(mirror, rotation)}/{quality}.{fmt}"


def canonical2(
    region: Box,
    size: tuple[int, int],
    width: int,
    height: int,
    mirror: bool = False,
    rotation: float = 0.0,
    quality: str = "default",
    fmt: str = "jpg",
    level0: bool = False,
) -> str:
    """2.1 ``region/size/rotation/quality.format``: the size is ``full`` when the region spans the image's
    width unscaled, else ``w,`` when the aspect ratio is kept, else ``w,h``.

    These are the forms OpenSeadragon (so Mirador) and the 2.x static tilers use: a tile at full resolution
    narrower than the image is ``512,``, never ``full``, so they are the paths the static files must have.
    With ``level0`` every other size is ``w,``: a pyramid level's edge tile rounds its height its own way.
    """
    if size == region[2:] and region[2] == width:
        size_part = "full"
    elif level0 or size[1] == max(1, (2 * region[3] * size[0] + region[2]) // (2 * region[2])):
        size_part = f"{size[0]},"
    else:
        size_part = f"{size[0]},{size[1]}"
    return f"{_region(region, width, height)}/{size_part}/{_rotation(mirror, rotation)}/{quality}.{fmt}"


def level0_path(version: int, image_id: str, width: int, height: int, region: Box, size: tuple[int, int]) -> str:
    """The static path of a tile or size, as OpenSeadragon and Mirador request it from that version's service."""
    path = (
        canonical2(region, size, width, height, level0=True) if version == 2 else canonical(region, size, width, height)
    )
    return f"{service_path(version, image_id)}/{path}"


def _region(region: Box, width: int, height: int) -> str:
    return "full" if region == (0, 0, width, height) else ",".join(map(str, region))


def _rotation(mirror: bool, rotation: float) -> str:
    return f"{'!' if mirror else ''}{number(rotation)}"


def number(value: float) -> str:
    """Canonical number: an integer when whole, else the decimal without trailing zeros."""
    return str(int(value)) if value == int(value) else f"{value:.9f}".rstrip("0").rstrip(".")
