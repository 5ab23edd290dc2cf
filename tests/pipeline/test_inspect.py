"""Untrusted input: decided by content, checked from the header, rejected with a clear reason."""

import pytest
import pyvips

from app.errors import CorruptImage, ImageTooLarge, UnsupportedFormat
from app.pipeline.inspect import open_image, parse_icc_description, sniff_format
from tests.helpers import convert_local, photo

ALLOWED = ("jpeg", "png", "tiff", "webp")


def test_format_is_decided_by_content_not_extension(tmp_path, settings):
    disguised = tmp_path / "really-a-png.jpg"
    photo(40, 30).pngsave(str(disguised))
    assert sniff_format(disguised) == "png"
    assert convert_local(disguised, tmp_path / "out", settings).facts.format == "png"


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("notes.jpg", b"just some text, not pixels", "not an image format"),
        ("empty.png", b"", "not an image format"),
    ],
)
def test_non_images_are_rejected(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormat, match=reason):
        open_image(path, ALLOWED, 10**9)


def test_untrusted_loaders_are_blocked(tmp_path):
    vips_native = tmp_path / "image.v"  # libvips' own format: its loader is marked untrusted
    pyvips.Image.black(8, 8).write_to_file(str(vips_native))
    with pytest.raises(UnsupportedFormat):
        open_image(vips_native, ALLOWED + ("vips",), 10**9)


def test_formats_off_the_allow_list_are_rejected_unless_configured(tmp_path):
    gif = tmp_path / "anim.gif"
    photo(20, 20).gifsave(str(gif))
    with pytest.raises(UnsupportedFormat, match="gif images are not accepted"):
        open_image(gif, ALLOWED, 10**9)
    image, facts = open_image(gif, ALLOWED + ("gif",), 10**9)
    assert facts.format == "gif"


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    big = tmp_path / "big.png"
    photo(300, 200).pngsave(str(big))
    with pytest.raises(ImageTooLarge, match="300x200 is 60,000 pixels, over the limit of 59,999"):
        open_image(big, ALLOWED, 59_999)


def test_truncated_files_fail_instead_of_giving_grey_tiles(tmp_path, settings):
    whole = tmp_path / "whole.jpg"
    photo(600, 400).jpegsave(str(whole))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CorruptImage, match="damaged or truncated"):
        convert_local(cut, tmp_path / "out", settings)
    assert not any((tmp_path / "out" / "tiles").iterdir()), "nothing may be left behind"


def test_icc_description_is_read_from_v2_and_v4_profiles():
    srgb = pyvips.Image.black(4, 4, bands=3).copy(interpretation="srgb").icc_export(output_profile="srgb")
    p3 = pyvips.Image.black(4, 4, bands=3).copy(interpretation="srgb").icc_export(output_profile="p3")
    assert "sRGB" in parse_icc_description(srgb.get("icc-profile-data"))
    assert "P3" in parse_icc_description(p3.get("icc-profile-data"))
    assert parse_icc_description(b"garbage") is None
