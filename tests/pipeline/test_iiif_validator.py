"""The official IIIF Image API validator, level 0, every test, against our static output (3.0, and 2.x)."""

import random

import pytest
import pyvips
from iiif_validator import validator

from tests.helpers import convert_local, jpeg2000, serve_directory

IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"


def _level0_tests(version="3.0"):
    listed = validator.TestSuite(validator.ValidationInfo()).list_tests(version)
    return sorted(name for name, test in listed.items() if test["level"] <= 0)


def _failures(names, base_url, prefix, version):
    failures = {}
    random.seed(0)  # id_squares samples squares at random: make a failure reproducible
    for name in names:
        result = validator.ImageAPI(
            IDENTIFIER, base_url.removeprefix("http://"), prefix, "http", "", version, debug=False
        )
        validator.TestSuite(validator.ValidationInfo()).run_test(name, result)
        if result.exception:
            failures[name] = f"{result.exception.message} (got {result.exception.got!r}, urls {result.urls})"
    return failures


@pytest.mark.parametrize("source", ["png", "jp2"])
def test_level0_output_passes_every_validator_test(tmp_path, settings, iiif_test_image, source):
    tiles = tmp_path / "out" / "tiles"
    tiles.mkdir(parents=True)
    if source == "jp2":  # the same pixels as a lossless JPEG 2000 master
        iiif_test_image = jpeg2000(
            pyvips.Image.new_from_file(str(iiif_test_image)).extract_band(0, n=3), tmp_path / "master.jp2"
        )
    with serve_directory(tiles) as base_url:
        convert_local(iiif_test_image, tmp_path / "out", settings.with_overrides(public_base_url=base_url), IDENTIFIER)
        names = _level0_tests()
        assert set(names) >= {"info_json", "id_basic", "id_squares", "format_jpg", "size_nofull"}
        assert _failures(names, base_url, "", "3.0") == {}


@pytest.mark.parametrize("versions", [(2, 3), (2,)])
def test_level0_v2_output_passes_every_validator_test(tmp_path, settings, iiif_test_image, versions):
    """The 2.x test set (the validator's "2.1" set holds only region_square, a level-3 test in 2.1) against the
    2.1 service at iiif/2/ID, beside the 3.0 one or alone; both stay valid."""
    tiles = tmp_path / "out" / "tiles"
    tiles.mkdir(parents=True)
    with serve_directory(tiles) as base_url:
        local = settings.with_overrides(public_base_url=base_url, iiif_versions=versions)
        convert_local(iiif_test_image, tmp_path / "out", local, IDENTIFIER)
        names = _level0_tests("2.0")
        assert set(names) == {"info_json", "id_basic", "id_squares", "format_jpg"}
        assert _failures(names, base_url, "iiif/2", "2.0") == {}
        if 3 in versions:
            assert _failures(_level0_tests(), base_url, "", "3.0") == {}
        else:  # no 3.0 service: only the Presentation 3 manifest lives under the id
            assert [path.name for path in (tiles / IDENTIFIER).iterdir()] == ["manifest.json"]
