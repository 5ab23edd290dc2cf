"""A stitched size (``app.pipeline.jpeg``) holds exactly what libvips would have written from the same tiles."""

import pytest
import pyvips

from app.pipeline import jpeg
from tests.helpers import photo


@pytest.mark.parametrize(("quality", "chroma"), [(85, "4:2:0"), (95, "4:4:4")])
def test_a_stitched_size_is_what_libvips_makes_of_its_levels_tiles(tmp_path, quality, chroma):
    photo(1250, 1000).dzsave(str(tmp_path / "img"), tile_size=512, overlap=0, suffix=f".jpg[Q={quality}]")
    level = tmp_path / "img_files" / "11"  # the top level: 3 x 2 tiles, the right and bottom ones cut short
    tiles = [pyvips.Image.new_from_file(str(level / f"{col}_{row}.jpg")) for row in range(2) for col in range(3)]
    joined = pyvips.Image.arrayjoin(tiles, across=3).crop(0, 0, 1250, 1000)  # arrayjoin pads the short ones
    by_libvips = joined.jpegsave_buffer(Q=quality, optimize_coding=True)

    ours = pyvips.Image.new_from_buffer(jpeg.stitched(level, 1250, 1000, 512, quality), "")
    theirs = pyvips.Image.new_from_buffer(by_libvips, "")
    assert (ours.width, ours.height, ours.bands) == (1250, 1000, 3)
    assert ours.get("jpeg-chroma-subsample") == theirs.get("jpeg-chroma-subsample") == chroma
    assert (ours - theirs).abs().max() == 0
