"""Bring any accepted image to what a JPEG tile can hold: 8-bit, 3-band sRGB.

Embedded ICC profiles (Adobe RGB, CMYK press profiles ...) are honoured;
CMYK without a profile uses libvips' built-in CMYK fallback; greyscale and
16-bit sources are converted; alpha is flattened onto a configured colour.
Everything stays lazy, so the conversion still streams.
"""

from __future__ import annotations

import pyvips

from app.model import ImageFacts


def to_srgb8(image: pyvips.Image, facts: ImageFacts, background: tuple[int, ...]) -> pyvips.Image:
    if _needs_icc_transform(image, facts):
        image = image.icc_transform("srgb", embedded=True, intent="relative", depth=8)
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.hasalpha():
        image = image.flatten(background=list(background))
    if image.bands > 3:
        image = image.extract_band(0, n=3)
    return image.cast("uchar") if image.format != "uchar" else image


def _needs_icc_transform(image: pyvips.Image, facts: ImageFacts) -> bool:
    if image.interpretation == "cmyk":
        return True
    if facts.icc_description is None or image.get_typeof("icc-profile-data") == 0:  # a decoder may have applied it
        return False
    # An sRGB-tagged source is already what we want; skipping the no-op transform saves a pass.
    return "srgb" not in facts.icc_description.lower()
