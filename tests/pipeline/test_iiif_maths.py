import math

import pytest

from app.iiif import grid, info, paths


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
    assert big["maxWidth"] == 2000 and "maxHeight" not in big  # clients take maxHeight = maxWidth
    assert big["sizes"][-1] == {"width": 2000, "height": 1500}
    assert [s["width"] for s in big["sizes"]] == sorted(s["width"] for s in big["sizes"])
    assert big["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4, 8, 16]}]
    assert big["profile"] == "level0" and big["type"] == "ImageService3"


def test_2_1_level0_paths_are_the_ones_openseadragon_asks_a_2_x_service_for():
    assert (
        grid.image_path("a", 1000, 1000, (0, 0, 512, 512), (512, 512), 2) == "iiif/2/a/0,0,512,512/512,/0/default.jpg"
    )
    assert grid.image_path("a", 1000, 1000, (0, 0, 1000, 1000), (500, 500), 2) == "iiif/2/a/full/500,/0/default.jpg"
    assert grid.image_path("a", 400, 300, (0, 0, 400, 300), (400, 300), 2) == "iiif/2/a/full/full/0/default.jpg"
    # a full-resolution tile as wide as the image (OpenSeadragon: size "full")
    assert (
        grid.image_path("a", 400, 1300, (0, 512, 400, 512), (400, 512), 2)
        == "iiif/2/a/0,512,400,512/full/0/default.jpg"
    )
    # an edge tile whose height the pyramid rounded its own way stays w,
    assert (
        grid.image_path("a", 1301, 700, (1024, 0, 277, 700), (139, 350), 2)
        == "iiif/2/a/1024,0,277,700/139,/0/default.jpg"
    )


def test_2_1_canonical_form_keeps_w_comma_only_for_the_aspect_ratio_it_implies():
    assert paths.canonical2((1024, 0, 277, 700), (139, 351), 1301, 700) == "1024,0,277,700/139,/0/default.jpg"
    assert paths.canonical2((1024, 0, 277, 700), (139, 350), 1301, 700) == "1024,0,277,700/139,350/0/default.jpg"
    assert paths.canonical2((0, 0, 100, 100), (300, 300), 1000, 1000, True, 90.5, "gray", "png") == (
        "0,0,100,100/300,/!90.5/gray.png"
    )


def test_tile_of_finds_exactly_the_pyramids_tiles():
    every = list(grid.tiles(1301, 700, 512))
    assert all(grid.tile_of(tile.region, tile.size, 1301, 700, 512) == tile for tile in every)
    assert grid.tile_of((0, 0, 512, 512), (256, 256), 1301, 700, 512) is None  # right region, wrong scale
    assert grid.tile_of((1, 0, 512, 512), (512, 512), 1301, 700, 512) is None
    assert grid.tile_of((0, 0, 1301, 700), (651, 350), 1301, 700, 512) is None  # two tiles wide at that scale


def test_a_panoramas_max_box_holds_its_full_max_and_every_tile():
    """A 5000x1100 image's full/max is 1250x275: declaring maxHeight 275 would tell clients not to expect its
    512 px tiles. maxWidth alone is a square box: full/max fills it one way, every tile fits."""
    for width, height in ((5000, 1100), (1100, 5000), (20000, 900)):
        declared = info.level0("http://x/p", width, height, 512, 2048)
        _, max_w, max_h = grid.max_size(width, height, 2048)
        assert declared["maxWidth"] == max(max_w, max_h) and "maxHeight" not in declared
        for tile in grid.tiles(width, height, 512):
            assert max(tile.size) <= declared["maxWidth"]
        v2 = info.level0_v2("http://x/p", width, height, 512, 2048)
        assert v2["profile"][1]["maxWidth"] == declared["maxWidth"] and "maxHeight" not in v2["profile"][1]


def test_a_bound_under_two_tiles_is_refused_with_the_reason():
    from config import Settings

    with pytest.raises(ValueError, match="IIIF_MAX_SIZE must be at least twice TILE_SIZE"):
        Settings.from_env({"IIIF_MAX_SIZE": "1000", "TILE_SIZE": "512"})
    assert Settings.from_env({"IIIF_MAX_SIZE": "1024", "TILE_SIZE": "512"}).iiif_max_size == 1024
