"""Metadata JSON: exiftool's grouped tags plus image facts, and a clear fallback without exiftool."""

import json
import os
import shutil

import pytest

from tests.helpers import convert_local, exiftool_write, photo, with_orientation


def _tagged_jpeg(tmp_path):
    src = tmp_path / "tagged.jpg"
    with_orientation(photo(120, 80), 6).jpegsave(str(src))
    exiftool_write(
        src,
        "-EXIF:Make=TestCam",
        "-EXIF:FNumber=2.8",
        "-EXIF:ISO=400",
        "-XMP-dc:Title=Harbour at dawn",
        "-IPTC:By-line=A. Photographer",
    )
    return src


def _metadata(tmp_path, out="out"):
    return json.loads((tmp_path / out / "metadata" / "img.json").read_text())


def test_exiftool_tags_are_grouped_and_typed(tmp_path, settings):
    convert_local(_tagged_jpeg(tmp_path), tmp_path / "out", settings)
    document = _metadata(tmp_path)
    tags = document["exiftool"]
    assert document["partial"] is None
    assert tags["EXIF:Make"] == "TestCam"
    assert tags["EXIF:FNumber"] == 2.8 and tags["EXIF:ISO"] == 400  # numbers stay numbers
    assert tags["XMP:Title"] == "Harbour at dawn"
    assert tags["IPTC:By-line"] == "A. Photographer"
    assert "SourceFile" not in tags and "File:Directory" not in tags  # no local paths leak out


def test_image_facts_describe_the_oriented_image(tmp_path, settings):
    convert_local(_tagged_jpeg(tmp_path), tmp_path / "out", settings)
    facts = _metadata(tmp_path)["image"]
    assert facts == {
        "format": "jpeg",
        "width": 80,
        "height": 120,
        "bands": 3,
        "bit_depth": 8,
        "interpretation": "srgb",
        "orientation": 6,
        "has_alpha": False,
        "icc_description": None,
        "file_bytes": (tmp_path / "tagged.jpg").stat().st_size,
    }


def test_without_exiftool_the_conversion_completes_and_says_why(tmp_path, settings):
    settings = settings.with_overrides(exiftool_path="/nonexistent/exiftool")
    conversion = convert_local(_tagged_jpeg(tmp_path), tmp_path / "out", settings)
    document = _metadata(tmp_path)
    assert "exiftool not found" in document["partial"] == conversion.metadata_partial
    assert document["exiftool"] == {}
    assert document["vips_exif"]["exif-ifd0-Make"].startswith("TestCam")
    assert (tmp_path / "out" / "tiles" / "img" / "info.json").exists()


def test_a_failing_exiftool_gives_partial_metadata(tmp_path, settings):
    broken = tmp_path / "exiftool"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    conversion = convert_local(
        _tagged_jpeg(tmp_path), tmp_path / "out", settings.with_overrides(exiftool_path=str(broken))
    )
    assert conversion.metadata_partial.startswith("exiftool failed")
    assert _metadata(tmp_path)["vips_exif"]


def test_a_hung_exiftool_costs_one_conversion_its_metadata_and_the_next_gets_a_fresh_one(
    tmp_path, settings, monkeypatch
):
    """An exiftool that never answers is killed after the timeout; left in place, it would stall every later read."""
    from app.pipeline import metadata

    monkeypatch.setattr(metadata, "TIMEOUT_SECONDS", 1.0)
    hung = tmp_path / "hung.pid"  # the first exiftool started hangs (and says who it is); later ones are real
    fake = tmp_path / "bin" / "exiftool"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nif [ ! -e "{hung}" ]; then echo $$ > "{hung}"; exec sleep 600; fi\n'
        f'exec "{shutil.which("exiftool")}" "$@"\n'
    )
    fake.chmod(0o755)
    settings, src = settings.with_overrides(exiftool_path=str(fake)), _tagged_jpeg(tmp_path)

    first = convert_local(src, tmp_path / "first", settings)
    assert first.metadata_partial == "exiftool gave no answer in 1s"
    assert (tmp_path / "first" / "tiles" / "img" / "info.json").exists()
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(hung.read_text()), 0)

    second = convert_local(src, tmp_path / "second", settings)
    assert second.metadata_partial is None
    assert _metadata(tmp_path, "second")["exiftool"]["EXIF:Make"] == "TestCam"
