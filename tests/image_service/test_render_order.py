"""The renderer applies the specification's order, region, size, rotation, quality: a bitonal answer is only
black and white and a gray one has one band, at any angle (a rotation interpolates, so quality comes after it)."""

from __future__ import annotations

import pytest
import pyvips

from app.iiif.request import Limits, parse, plan
from app.pipeline.render import render
from app.pipeline.tiles import write_deep_zoom
from app.storage.tile_pyramid import TileCache, TilePyramid
from tests.helpers import photo

LIMITS = Limits(4096, 4096, 4096 * 4096)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiles")
    write_deep_zoom(photo(700, 500), root, "p", 512, 85)
    tiles = TilePyramid("p", 700, 500, 512, "local", lambda key: (root / key).read_bytes(), TileCache(1 << 24))
    pyramid = tiles.pyramid

    def answer(rotation: str, quality: str, fmt: str) -> pyvips.Image:
        wanted = plan(parse("full", "!400,400", rotation, quality, fmt), pyramid.width, pyramid.height, LIMITS)
        return pyvips.Image.new_from_buffer(render(wanted, pyramid, tiles.crop), "")

    return answer


@pytest.mark.parametrize("rotation", ["45", "17.5", "!30", "90"])
@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_bitonal_is_black_and_white_at_any_rotation(rendered, rotation, fmt):
    image = rendered(rotation, "bitonal", fmt)
    grey = image[0]
    values = set(grey.cast("uchar").hist_find().numpy().nonzero()[1].tolist())
    assert values <= {0, 255}, f"grey levels {sorted(values)[:8]} in a bitonal answer"
    assert values == {0, 255}, "the photo has both dark and light areas"


@pytest.mark.parametrize("rotation", ["45", "!200"])
def test_gray_has_one_colour_band_at_any_rotation(rendered, rotation):
    assert rendered(rotation, "gray", "jpg").bands == 1
    png = rendered(rotation, "gray", "png")
    assert png.bands == 2 and png.hasalpha(), "grey, and the rotation's transparent corners"
    assert png[1].min() == 0 and png[1].max() == 255
