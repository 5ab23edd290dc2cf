"""Canonical IIIF Image API 3.0 paths, for the static level-0 files and the dynamic level-2 answers alike.

Both must agree: a named derivative made at conversion is published at the
path the dynamic endpoint would redirect the same request to.
"""

from __future__ import annotations

Box = tuple[int, int, int, int]


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
    """``region/size/rotation/quality.format`` of an image of ``width`` x ``height``.

    ``max_size`` is what ``max`` stands for in this region (level 2: the largest size within the advertised
    limits). Without it (level 0) only the full image at full size is ``max``: viewers ask for tiles as
    ``w,h``, and those are the paths the static files must have.
    """
    region_part = "full" if region == (0, 0, width, height) else ",".join(map(str, region))
    is_max = size == max_size if max_size is not None else region_part == "full" and size == (width, height)
    size_part = "max" if is_max else ("^" if upscaled else "") + f"{size[0]},{size[1]}"
    return f"{region_part}/{size_part}/{'!' if mirror else ''}{number(rotation)}/{quality}.{fmt}"


def number(value: float) -> str:
    """Canonical number: an integer when whole, else the decimal without trailing zeros."""
    return str(int(value)) if value == int(value) else f"{value:.9f}".rstrip("0").rstrip(".")
