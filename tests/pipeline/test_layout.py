"""The output contract: Deep Zoom and IIIF level 0 files, exactly as viewers expect them."""

import json
import math
import os
import xml.etree.ElementTree as ET

import pyvips

from app.iiif import grid
from tests.helpers import convert_local, photo

DZ = "{http://schemas.microsoft.com/deepzoom/2008}"


def _convert_photo(tmp_path, settings, width=1300, height=700, image_id="maps/sheet 1"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "src.jpg"
    photo(width, height).jpegsave(str(src))
    conversion = convert_local(src, tmp_path / "out", settings, image_id)
    return conversion, tmp_path / "out" / "tiles"


def test_deep_zoom_descriptor_and_grid_match_the_format(tmp_path, settings):
    conversion, tiles = _convert_photo(tmp_path, settings, image_id="sheet")
    root = ET.parse(tiles / "sheet.dzi").getroot()
    assert root.tag == f"{DZ}Image"
    assert (root.get("TileSize"), root.get("Overlap"), root.get("Format")) == ("512", "0", "jpg")
    size = root.find(f"{DZ}Size")
    assert (size.get("Width"), size.get("Height")) == ("1300", "700")

    top = math.ceil(math.log2(1300))
    levels = sorted(int(p.name) for p in (tiles / "sheet_files").iterdir())
    assert levels == list(range(top + 1))  # down to 1x1
    for level in levels:
        level_w, level_h = math.ceil(1300 / 2 ** (top - level)), math.ceil(700 / 2 ** (top - level))
        cols, rows = math.ceil(level_w / 512), math.ceil(level_h / 512)
        names = sorted(p.name for p in (tiles / "sheet_files" / str(level)).iterdir())
        assert names == sorted(f"{c}_{r}.jpg" for c in range(cols) for r in range(rows))
        for c in range(cols):
            for r in range(rows):
                tile = pyvips.Image.new_from_file(str(tiles / "sheet_files" / str(level) / f"{c}_{r}.jpg"))
                assert (tile.width, tile.height) == (min(512, level_w - c * 512), min(512, level_h - r * 512))
    assert not list(tiles.rglob("*.xml")), "no libvips properties files are published"


def test_iiif_layout_declares_exactly_what_exists(tmp_path, settings):
    on = settings.with_overrides(serving_tiff=True)  # off by default; on, its TIFF is published beside the layouts
    conversion, tiles = _convert_photo(tmp_path, on, image_id="maps/sheet_1")
    info = json.loads((tiles / "maps/sheet_1/info.json").read_text())
    assert info["id"] == "http://tiles.example.org/maps/sheet_1"
    assert (info["width"], info["height"]) == (1300, 700)
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"

    for tile in grid.tiles(1300, 700, 512):
        path = tiles / grid.image_path("maps/sheet_1", 1300, 700, tile.region, tile.size)
        image = pyvips.Image.new_from_file(str(path))
        assert (image.width, image.height) == tile.size
        # one encode serves both layouts: the IIIF tile is the Deep Zoom tile's bytes
        assert os.path.samefile(path, tiles / tile.dz_path("maps/sheet_1"))
    for size in info["sizes"]:
        image = pyvips.Image.new_from_file(
            str(tiles / f"maps/sheet_1/full/{size['width']},{size['height']}/0/default.jpg")
        )
        assert (image.width, image.height) == (size["width"], size["height"])
    full_max = pyvips.Image.new_from_file(str(tiles / "maps/sheet_1/full/max/0/default.jpg"))
    assert (full_max.width, full_max.height) == (1300, 700)
    published = {str(p.relative_to(tiles)) for p in tiles.rglob("*") if p.is_file()}
    assert published == set(conversion.tiles) | set(conversion.descriptors) | {"derivatives/maps/sheet_1.tif"}
    assert conversion.derivatives == ("derivatives/maps/sheet_1.tif",)
    assert not [p for p in tiles.iterdir() if p.name.startswith(".staging")]


def test_large_images_bound_full_max_and_declare_it(tmp_path, settings):
    settings = settings.with_overrides(iiif_max_size=1024)
    _, tiles = _convert_photo(tmp_path, settings, width=2500, height=1100, image_id="wide")
    info = json.loads((tiles / "wide/info.json").read_text())
    assert info["maxWidth"] == 625 and "maxHeight" not in info  # a 625x625 box: full/max and every tile fit
    full_max = pyvips.Image.new_from_file(str(tiles / "wide/full/max/0/default.jpg"))
    assert (full_max.width, full_max.height) == (625, 275)


def test_reconverting_a_smaller_image_leaves_no_orphan_tiles(tmp_path, settings):
    _convert_photo(tmp_path, settings, width=1300, height=700, image_id="again")
    conversion, tiles = _convert_photo(tmp_path, settings, width=300, height=200, image_id="again")
    published = {str(p.relative_to(tiles)) for p in tiles.rglob("*.jpg")}
    assert published == {p for p in (*conversion.tiles, *conversion.descriptors) if p.endswith(".jpg")}


def test_nested_ids_publish_side_by_side_in_either_order(tmp_path, settings):
    """An id may be another's folder ("box-3" and "box-3/letter-7"): neither publish may remove the other."""
    sources = {"box-3": photo(900, 600), "box-3/letter-7": photo(700, 500)}
    for run, order in enumerate((list(sources), list(reversed(sources)))):
        root = tmp_path / str(run)
        root.mkdir()
        expected = set()
        for image_id in order:
            src = root / f"{image_id.replace('/', '-')}.jpg"
            sources[image_id].jpegsave(str(src))
            conversion = convert_local(src, root / "out", settings, image_id)
            expected |= {*conversion.tiles, *conversion.descriptors, *conversion.derivatives}
        tiles = root / "out" / "tiles"
        assert {str(p.relative_to(tiles)) for p in tiles.rglob("*") if p.is_file()} == expected


def test_jpeg_quality_reaches_the_tile_encoder(tmp_path, settings):
    sizes = {}
    for quality in (40, 95):
        conversion, tiles = _convert_photo(
            tmp_path / str(quality), settings.with_overrides(jpeg_quality=quality), width=600, height=400, image_id="q"
        )
        sizes[quality] = (tiles / "q_files" / "10" / "0_0.jpg").stat().st_size
    assert sizes[95] > 1.5 * sizes[40]


def test_v2_layout_reuses_every_encoded_file_under_its_2_1_name(tmp_path, settings):
    """IIIF_VERSIONS=2,3: every 2.1 tile and size is a hard link to the file its 3.0 twin is (no second encode),
    at the paths OpenSeadragon asks a 2.x level-0 service for; both info.json files name each other."""
    both = settings.with_overrides(iiif_versions=(2, 3), iiif_max_size=1024)
    conversion, tiles = _convert_photo(tmp_path / "both", both, width=1300, height=700, image_id="maps/sheet_1")
    only3, tiles3 = _convert_photo(
        tmp_path / "three", settings.with_overrides(iiif_max_size=1024), 1300, 700, "maps/sheet_1"
    )
    v2 = tiles / "iiif/2/maps/sheet_1"
    for tile in grid.tiles(1300, 700, 512):
        path = tiles / grid.image_path("maps/sheet_1", 1300, 700, tile.region, tile.size, version=2)
        assert os.path.samefile(path, tiles / tile.dz_path("maps/sheet_1"))
    assert (v2 / "0,0,512,512/512,/0/default.jpg").exists()  # full resolution, narrower than the image: w,
    assert (v2 / "full/163,/0/default.jpg").exists()  # a single-tile level
    info2 = json.loads((v2 / "info.json").read_text())
    info3 = json.loads((tiles / "maps/sheet_1/info.json").read_text())
    assert info2["@id"] == "http://tiles.example.org/iiif/2/maps/sheet_1"
    assert info2["profile"] == [
        "http://iiif.io/api/image/2/level0.json",
        {"formats": ["jpg"], "qualities": ["default"], "maxWidth": 650},
    ]
    assert info2["service"][0]["id"] == info3["id"]
    assert info3["service"] == [
        {"@id": info2["@id"], "@type": "ImageService2", "profile": "http://iiif.io/api/image/2/level0.json"}
    ]
    assert info2["sizes"] == info3["sizes"] and info2["tiles"] == info3["tiles"]
    for size in info2["sizes"]:  # each size once encoded, under both names
        three = tiles / f"maps/sheet_1/full/{size['width']},{size['height']}/0/default.jpg"
        assert os.path.samefile(v2 / f"full/{size['width']},/0/default.jpg", three)
    assert os.path.samefile(v2 / "full/max/0/default.jpg", tiles / "maps/sheet_1/full/max/0/default.jpg")
    assert not (v2 / "full/full").exists()  # beyond maxWidth: full size is not offered at level 0
    published = {str(p.relative_to(tiles)) for p in tiles.rglob("*") if p.is_file()}
    assert published == set(conversion.tiles) | set(conversion.descriptors)  # no serving TIFF by default
    extra = {path for path in published if path.startswith("iiif/2/")}
    assert conversion.object_count == only3.object_count + len(extra)
    # the same bytes: every 2.1 image is a file the other names already have; only its info.json is new
    images = {os.stat(tiles / path).st_ino for path in published if not path.startswith("iiif/2/")}
    assert {path for path in extra if os.stat(tiles / path).st_ino not in images} == {"iiif/2/maps/sheet_1/info.json"}
    assert len(published) - len(extra) == len([p for p in tiles3.rglob("*") if p.is_file()])
    assert conversion.iiif_versions == (3, 2)


def test_v2_small_image_full_size_is_full_full(tmp_path, settings):
    _, tiles = _convert_photo(tmp_path, settings.with_overrides(iiif_versions=(2, 3)), 400, 300, "small")
    full = tiles / "iiif/2/small/full/full/0/default.jpg"
    assert os.path.samefile(full, tiles / "small/full/max/0/default.jpg")
    assert os.path.samefile(tiles / "iiif/2/small/full/max/0/default.jpg", full)
    assert os.path.samefile(tiles / "iiif/2/small/full/400,/0/default.jpg", full)  # as a client picks it from sizes


def test_reconverting_without_2_1_removes_the_2_1_service_and_keeps_nested_ids(tmp_path, settings):
    both = settings.with_overrides(iiif_versions=(2, 3))
    src = tmp_path / "src.jpg"
    photo(1300, 700).jpegsave(str(src))
    convert_local(src, tmp_path / "out", both, "box")
    convert_local(src, tmp_path / "out", both, "box/letter")  # a nested id's 2.1 service lives inside box's
    convert_local(src, tmp_path / "out", settings, "box")  # again, 3.0 only
    v2 = tmp_path / "out" / "tiles" / "iiif/2/box"
    assert sorted(path.name for path in v2.iterdir()) == ["letter"]
    assert (v2 / "letter/info.json").exists() and (tmp_path / "out/tiles/box/info.json").exists()


def test_sizes_are_level_tiles_or_one_optimised_encode(tmp_path, settings):
    """A declared size that fits in one tile is its Deep Zoom level's tile (no second encode); a larger one is
    stitched once, with optimised Huffman tables, and full/max is the same file."""
    _, tiles = _convert_photo(tmp_path, settings, width=2500, height=2000, image_id="page")
    info = json.loads((tiles / "page/info.json").read_text())
    top = grid.max_dz_level(2500, 2000)
    largest = tiles / "page/full/1250,1000/0/default.jpg"
    assert [(s["width"], s["height"]) for s in info["sizes"]] == [
        (79, 63),
        (157, 125),
        (313, 250),
        (625, 500),
        (1250, 1000),
    ]
    for size in info["sizes"]:
        path = tiles / f"page/full/{size['width']},{size['height']}/0/default.jpg"
        image = pyvips.Image.new_from_file(str(path))
        assert (image.width, image.height) == (size["width"], size["height"])
        level = top - round(math.log2(2500 / size["width"]))
        if max(size["width"], size["height"]) <= 512:
            assert os.path.samefile(path, tiles / f"page_files/{level}/0_0.jpg")
        else:
            assert not any(p.samefile(path) for p in (tiles / f"page_files/{level}").iterdir())
            stitched = pyvips.Image.arrayjoin(
                [
                    pyvips.Image.new_from_file(str(t))
                    for t in sorted((tiles / f"page_files/{level}").iterdir(), key=_row_major)
                ],
                across=math.ceil(size["width"] / 512),
            ).crop(0, 0, size["width"], size["height"])
            assert path.stat().st_size < len(stitched.jpegsave_buffer(Q=85, keep="none"))  # the same pixels, smaller
    assert os.path.samefile(tiles / "page/full/max/0/default.jpg", largest)


def _row_major(tile_path):
    col, row = map(int, tile_path.stem.split("_"))
    return row, col
