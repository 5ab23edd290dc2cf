import math

import pytest

from app.iiif import grid, info


@pytest.mark.parametrize(
    "width,height,expected", [(1000, 1000, [1, 2]), (512, 300, [1]), (513, 10, [1, 2]), (8000, 6000, [1, 2, 4, 8, 16])]
)
def test_scale_factors_stop_at_the_first_single_tile_level(width, height, expected):
    assert grid.scale_factors(width, height, 512) == expected


def test_levels_halve_rounding_up_like_deep_zoom():
    assert grid.max_dz_level(1000, 1000) == 10
    assert grid.max_dz_level(1, 1) == 0
    assert grid.max_dz_level(1025, 3) == 11
    assert [grid.level_size(1001, 7, 2**k) for k in range(4)] == [(1001, 7), (501, 4), (251, 2), (126, 1)]


def test_tiles_cover_every_level_exactly_once():
    width, height, size = 1300, 700, 256
    for scale in grid.scale_factors(width, height, size):
        level = [
            t
            for t in grid.tiles(width, height, size)
            if t.dz_level == grid.max_dz_level(width, height) - int(math.log2(scale))
        ]
        assert sum(t.region[2] * t.region[3] for t in level) == width * height
        level_w, level_h = grid.level_size(width, height, scale)
        assert sum(t.size[0] * t.size[1] for t in level) == level_w * level_h
        for tile in level:  # the IIIF size is the region scaled down, rounded up, as viewers compute it
            assert tile.size == (math.ceil(tile.region[2] / scale), math.ceil(tile.region[3] / scale))


def test_canonical_paths_match_what_openseadragon_requests():
    assert grid.image_path("a", 1000, 1000, (0, 0, 512, 512), (512, 512)) == "a/0,0,512,512/512,512/0/default.jpg"
    assert grid.image_path("a", 1000, 1000, (0, 0, 1000, 1000), (500, 500)) == "a/full/500,500/0/default.jpg"
    assert grid.image_path("a", 400, 300, (0, 0, 400, 300), (400, 300)) == "a/full/max/0/default.jpg"


def test_info_json_declares_max_only_for_images_over_the_bound():
    small = info.level0("http://x/a", 1000, 800, 512, 2048)
    assert "maxWidth" not in small and small["sizes"][-1] == {"width": 1000, "height": 800}
    big = info.level0("http://x/b", 8000, 6000, 512, 2048)
    assert (big["maxWidth"], big["maxHeight"]) == (2000, 1500)
    assert big["sizes"][-1] == {"width": 2000, "height": 1500}
    assert [s["width"] for s in big["sizes"]] == sorted(s["width"] for s in big["sizes"])
    assert big["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4, 8, 16]}]
    assert big["profile"] == "level0" and big["type"] == "ImageService3"
