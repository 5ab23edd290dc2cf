"""Faithful pixels: what a viewer shows must be what the photographer saw."""

import json

import pytest
import pyvips

from tests.helpers import convert_local, solid, tile_pixel, with_orientation

RED, BLUE = [200, 40, 40], [40, 60, 200]


def _close(actual, expected, tolerance):
    assert len(actual) == 3, f"tiles must be 3-band sRGB, got {len(actual)} bands"
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected)), (
        f"{actual} is not within {tolerance} of {expected}"
    )


def _convert(tmp_path, settings, image, name, **save):
    src = tmp_path / name
    image.write_to_file(str(src), **save)
    conversion = convert_local(src, tmp_path / "out", settings, "img")
    return conversion, tmp_path / "out" / "tiles" / "img_files"


@pytest.mark.parametrize(
    "orientation,size,red_at",
    [(1, (300, 200), "left"), (6, (200, 300), "top"), (3, (300, 200), "right"), (8, (200, 300), "bottom")],
)
def test_exif_orientation_is_applied(tmp_path, settings, orientation, size, red_at):
    # left half red, right half blue, as stored; the viewer must see it rotated per EXIF
    stored = solid(150, 200, RED).join(solid(150, 200, BLUE), "horizontal")
    conversion, tiles = _convert(tmp_path, settings, with_orientation(stored, orientation), "o.jpg")
    assert (conversion.facts.width, conversion.facts.height) == size
    assert conversion.facts.orientation == orientation
    top = tiles / "9" / "0_0.jpg"
    image = pyvips.Image.new_from_file(str(top))
    assert (image.width, image.height) == size
    probe = {
        "left": (10, size[1] // 2),
        "right": (size[0] - 10, size[1] // 2),
        "top": (size[0] // 2, 10),
        "bottom": (size[0] // 2, size[1] - 10),
    }[red_at]
    _close(tile_pixel(top, *probe), RED, 12)


def test_embedded_wide_gamut_profile_is_converted_to_srgb(tmp_path, settings):
    p3 = solid(64, 64, RED).icc_export(output_profile="p3")  # same colour, P3 numbers + embedded profile
    assert abs(p3(5, 5)[0] - RED[0]) > 5, "the P3 encoding must differ, or this test proves nothing"
    conversion, tiles = _convert(tmp_path, settings, p3, "p3.jpg")
    assert "P3" in conversion.facts.icc_description
    _close(tile_pixel(tiles / "6" / "0_0.jpg", 5, 5), RED, 6)


def test_cmyk_becomes_srgb(tmp_path, settings):
    cmyk = solid(64, 64, [120, 140, 160]).icc_export(output_profile="cmyk")
    assert cmyk.interpretation == "cmyk" and cmyk.bands == 4
    conversion, tiles = _convert(tmp_path, settings, cmyk, "cmyk.jpg")
    assert conversion.facts.bands == 4
    _close(tile_pixel(tiles / "6" / "0_0.jpg", 5, 5), [120, 140, 160], 10)


def test_greyscale_and_16_bit_sources_give_8_bit_srgb(tmp_path, settings):
    grey16 = solid(64, 64, [32768], interpretation="grey16", fmt="ushort")
    conversion, tiles = _convert(tmp_path, settings, grey16, "grey16.png")
    assert (conversion.facts.bit_depth, conversion.facts.bands) == (16, 1)
    _close(tile_pixel(tiles / "6" / "0_0.jpg", 5, 5), [128, 128, 128], 3)

    rgb16 = solid(64, 64, [65535, 32768, 0], interpretation="rgb16", fmt="ushort")
    conversion, tiles = _convert(tmp_path, settings, rgb16, "rgb16.tif")
    assert conversion.facts.format == "tiff" and conversion.facts.bit_depth == 16
    _close(tile_pixel(tiles / "6" / "0_0.jpg", 5, 5), [255, 128, 0], 6)


def test_alpha_is_flattened_on_the_configured_background(tmp_path, settings):
    transparent = solid(64, 64, [255, 0, 0, 0])  # fully transparent red
    settings = settings.with_overrides(flatten_background=(0, 128, 255))
    conversion, tiles = _convert(tmp_path, settings, transparent, "alpha.png")
    assert conversion.facts.has_alpha
    _close(tile_pixel(tiles / "6" / "0_0.jpg", 5, 5), [0, 128, 255], 4)
    metadata = json.loads((tmp_path / "out" / "metadata" / "img.json").read_text())
    assert metadata["image"]["has_alpha"] is True
