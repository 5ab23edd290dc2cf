"""JPEG 2000: checked from its header, decoded once through OpenJPEG, tiled by the one tiling path."""

import struct

import pytest
import pyvips

from app.errors import CorruptImage, ImageTooLarge
from app.pipeline import jp2
from app.pipeline.inspect import open_image, sniff_format
from tests.helpers import (
    convert_local,
    jpeg2000,
    photo,
    reference_decode,
    solid,
    tile_pixel,
    with_colour_box,
)

ALLOWED = ("jpeg", "jp2k")
RED = [200, 40, 40]


def _close(actual, expected, tolerance):
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), f"{actual} vs {expected}"


def _error(image, reference):
    return (image.cast("float") - reference.cast("float")).abs().avg()


def test_tiles_match_openjpegs_reference_decode_within_jpeg_tolerance(tmp_path, settings):
    src = jpeg2000(photo(1100, 700), tmp_path / "master.jp2", irreversible=True, tile_size=(256, 256))
    with_tiff = settings.with_overrides(serving_tiff=True)  # its pixels decoded once, read again for the TIFF
    conversion = convert_local(src, tmp_path / "out", with_tiff, "master")
    assert (conversion.facts.format, conversion.facts.width, conversion.facts.height) == ("jp2k", 1100, 700)
    reference = reference_decode(src, tmp_path / "reference.tif")
    tiled = pyvips.Image.arrayjoin(
        [
            pyvips.Image.new_from_file(str(tmp_path / "out" / "tiles" / "master_files" / "11" / f"{col}_{row}.jpg"))
            for row in range(2)
            for col in range(3)
        ],
        across=3,
    ).crop(0, 0, 1100, 700)
    jpeg_of_reference = pyvips.Image.new_from_buffer(reference.jpegsave_buffer(Q=settings.jpeg_quality), "")
    assert _error(tiled, reference) <= _error(jpeg_of_reference, reference) + 0.5  # no worse than JPEG itself
    info = (tmp_path / "out" / "tiles" / "master" / "info.json").read_text()
    assert '"width": 1100' in info and (tmp_path / "out" / "tiles" / "derivatives" / "master.tif").exists()


def test_a_raw_codestream_is_a_jpeg_2000_too(tmp_path):
    src = jpeg2000(solid(80, 60, RED), tmp_path / "stream.j2k")
    assert sniff_format(src) == "jp2k"
    image, facts = open_image(src, ALLOWED, 10**9)
    assert (facts.width, facts.height, facts.bands) == (80, 60, 3)
    _close(image(5, 5), RED, 1)


@pytest.mark.parametrize(
    "image,bits,expected",
    [
        (solid(64, 64, [90]), 8, [90, 90, 90]),
        (solid(64, 64, [32768], interpretation="grey16", fmt="ushort"), 16, [128, 128, 128]),
        (solid(64, 64, [255, 0, 0, 0]), 8, [0, 128, 255]),  # transparent: flattened on the background
    ],
)
def test_greyscale_16_bit_and_alpha_become_8_bit_srgb(tmp_path, settings, image, bits, expected):
    src = jpeg2000(image, tmp_path / "in.jp2")
    settings = settings.with_overrides(flatten_background=(0, 128, 255))
    conversion = convert_local(src, tmp_path / "out", settings)
    assert conversion.facts.bit_depth == bits and conversion.facts.has_alpha == (image.bands == 4)
    _close(tile_pixel(tmp_path / "out" / "tiles" / "img_files" / "6" / "0_0.jpg", 5, 5), expected, 4)


def test_an_icc_profile_in_the_colour_box_is_converted_to_srgb(tmp_path, settings):
    p3 = solid(64, 64, RED).icc_export(output_profile="p3")
    plain = jpeg2000(p3.copy(), tmp_path / "plain.jp2").read_bytes()
    src = tmp_path / "p3.jp2"
    src.write_bytes(with_colour_box(plain, bytes([2, 0, 0]) + p3.get("icc-profile-data")))
    conversion = convert_local(src, tmp_path / "out", settings)
    assert "P3" in conversion.facts.icc_description
    _close(tile_pixel(tmp_path / "out" / "tiles" / "img_files" / "6" / "0_0.jpg", 5, 5), RED, 6)


def test_sycc_is_decoded_to_rgb(tmp_path, settings):
    r, g, b = RED
    ycc = [
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    ]
    plain = jpeg2000(solid(64, 64, [round(v) for v in ycc]), tmp_path / "plain.jp2", mct=0).read_bytes()
    src = tmp_path / "sycc.jp2"
    src.write_bytes(with_colour_box(plain, bytes([1, 0, 0]) + struct.pack(">I", 18)))  # enumerated: sYCC
    convert_local(src, tmp_path / "out", settings)
    _close(tile_pixel(tmp_path / "out" / "tiles" / "img_files" / "6" / "0_0.jpg", 5, 5), RED, 4)


def _damaged(tmp_path, how):
    whole = jpeg2000(photo(300, 200), tmp_path / "whole.jp2", irreversible=True).read_bytes()
    siz = whole.index(b"\xff\x4f\xff\x51") + 2
    if how == "truncated":
        return whole[: len(whole) * 2 // 3]
    if how == "cut inside the header":
        return whole[: siz + 20]
    if how == "damaged marker":
        main = whole.index(b"\xff\x90")  # the first tile-part: its SOT marker overwritten
        return whole[:main] + b"\x00\x00" + whole[main + 2 :]
    if how == "huge":  # the SIZ claims 100,000 x 100,000 (Xsiz, Ysiz), the rest a 300x200 image
        return whole[: siz + 6] + struct.pack(">II", 100_000, 100_000) + whole[siz + 14 :]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how,error,reason",
    [
        ("truncated", CorruptImage, "truncated"),
        ("cut inside the header", CorruptImage, "truncated"),
        ("damaged marker", CorruptImage, "damaged"),
        ("huge", ImageTooLarge, "100000x100000 is 10,000,000,000 pixels, over the limit"),
    ],
)
def test_hostile_codestreams_are_refused_before_decoding_and_leave_nothing(
    tmp_path, settings, monkeypatch, how, error, reason
):
    src = tmp_path / "hostile.jp2"
    src.write_bytes(_damaged(tmp_path, how))
    monkeypatch.setattr(jp2, "decode", lambda *_: pytest.fail("decoded a file its header check should refuse"))
    with pytest.raises(error, match=reason):
        convert_local(src, tmp_path / "out", settings)
    assert not any((tmp_path / "out" / "tiles").iterdir())


def test_a_tiled_codestream_is_walked_tile_part_by_tile_part(tmp_path):
    whole = jpeg2000(photo(700, 500), tmp_path / "tiled.jp2", tile_size=(256, 256)).read_bytes()  # 3 x 2 tiles
    header = jp2.read_header(tmp_path / "tiled.jp2", lambda width, height: None)
    assert (header.width, header.height, header.components, header.bit_depth) == (700, 500, 3, 8)
    box = whole.index(b"jp2c") - 4  # the codestream's box, the file's last: its last tile-part gone, EOC kept
    stream = whole[box + 8 : whole.rindex(b"\xff\x90")] + b"\xff\xd9"
    (tmp_path / "short.jp2").write_bytes(whole[:box] + struct.pack(">I4s", 8 + len(stream), b"jp2c") + stream)
    with pytest.raises(CorruptImage, match="1 of 6 tiles are missing"):
        jp2.read_header(tmp_path / "short.jp2", lambda width, height: None)


def test_the_web_app_never_imports_the_codecs_and_a_jpeg_conversion_never_imports_pdfium(tmp_path):
    """Start-up stays short: the web app (which imports the pipeline) loads neither numpy nor imagecodecs (0.1 s),
    a conversion loads them for its sizes and colours, and PDFium loads only for PDFs."""
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "photo.jpg"
    photo(600, 400).jpegsave(str(src))
    script = (
        "import sys; from pathlib import Path; import app.web.wsgi; from app.__main__ import main; "
        "print(sorted({'imagecodecs', 'numpy', 'pypdfium2'} & set(sys.modules))); "
        "main(['convert', sys.argv[1], '--tiles-dir', sys.argv[2], '--metadata-dir', sys.argv[2]]); "
        "print(sorted({'imagecodecs', 'numpy', 'pypdfium2'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "out")],
        check=True,
        text=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "[]" and lines[-1] == "['imagecodecs', 'numpy']"
