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
