"""The official IIIF Image API validator (3.0), every level-2 test, against the app on 127.0.0.1 reading S3."""

import random

import pyvips
from iiif_validator import validator

from tests.image_service.conftest import http_server

IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"
# Level-3 tests of features this server also offers (advertised in extraFeatures/extraFormats). Not run:
# format_webp (the validator calls urllib.urlopen, which Python 3 lacks; tested in test_endpoint), size_up (expects
# ^max to be the full size, but with maxWidth/maxHeight advertised ^max upscales to them, as the specification
# says), format_gif/jp2/pdf (not offered: 501).
EXTRA = {
    "format_tif",
    "linkheader_canonical",
    "linkheader_profile",
    "rot_full_non90",
    "rot_mirror",
    "rot_mirror_180",
    "rot_region_non90",
}


def _tests(version="3.0"):
    listed = validator.TestSuite(validator.ValidationInfo()).list_tests(version)
    return sorted(name for name, test in listed.items() if test["level"] <= 2 or name in EXTRA)


def test_every_level2_validator_test_passes(served, iiif_test_image):
    served.put(IDENTIFIER, pyvips.Image.new_from_file(str(iiif_test_image), access="sequential").colourspace("srgb"))
    names = _tests()
    assert len([name for name in names if name not in EXTRA]) == 33
    assert {
        "info_json",
        "id_squares",
        "region_percent",
        "size_bwh",
        "rot_full_basic",
        "quality_bitonal",
        "format_png",
        "baseurl_redirect",
        "cors",
        "jsonld",
        "size_noup",
        "region_square",
    } <= set(names)
    failures = {}
    random.seed(0)  # tests sample squares, sizes and angles at random: make a failure reproducible
    with http_server(served.app()) as server:
        for name in names:
            result = validator.ImageAPI(IDENTIFIER, server, "iiif/3", "http", "", "3.0", debug=False)
            validator.TestSuite(validator.ValidationInfo()).run_test(name, result)
            if result.exception:
                failures[name] = f"{result.exception} (urls {result.urls})"
    assert failures == {}


# 2.x: the same level-3 features, and size_up (2.1 upscales any size without ^), and region_square (the
# validator's whole "2.1" set: 2.1 added it as an optional feature, which info.json lists in "supports").
EXTRA_2 = EXTRA | {"size_up"}


def test_every_v2_validator_test_passes(served, iiif_test_image):
    """``iiif-validate.py --version=2.0`` at level 2 (and the level-3 features offered), and the 2.1 set."""
    served.put(IDENTIFIER, pyvips.Image.new_from_file(str(iiif_test_image), access="sequential").colourspace("srgb"))
    listed = validator.TestSuite(validator.ValidationInfo()).list_tests("2.0")
    names = sorted(name for name, test in listed.items() if test["level"] <= 2 or name in EXTRA_2)
    assert len([name for name in names if name not in EXTRA_2]) == 30  # every test of levels 0, 1 and 2
    assert {"info_json", "size_wc", "size_ch", "size_bwh", "rot_full_basic", "quality_bitonal", "jsonld"} <= set(names)
    assert list(validator.TestSuite(validator.ValidationInfo()).list_tests("2.1")) == ["region_square"]
    # run with 2.0's URLs: given "2.1", the validator builds 1.x URLs (quality "native", no format)
    runs = [(name, "2.0") for name in [*names, "region_square"]]
    failures = {}
    random.seed(0)
    with http_server(served.app()) as server:
        for name, version in runs:
            result = validator.ImageAPI(IDENTIFIER, server, "iiif/2", "http", "", version, debug=False)
            validator.TestSuite(validator.ValidationInfo()).run_test(name, result)
            if result.exception:
                failures[name] = f"{result.exception} (urls {result.urls})"
    assert failures == {}
