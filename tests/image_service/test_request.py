"""The IIIF 3.0 request grammar and its arithmetic, without pixels."""

import pytest

from app.iiif import request
from app.iiif.request import (
    BadRequest,
    Forbidden,
    Limits,
    NotImplementedHere,
    parse,
    plan,
)

LIMITS = Limits(4096, 4096, 4096 * 4096)


def _plan(region="full", size="max", rotation="0", quality="default", fmt="jpg", width=1000, height=800, limits=LIMITS):
    return plan(parse(region, size, rotation, quality, fmt), width, height, limits)


@pytest.mark.parametrize(
    "region,expected",
    [
        ("full", (0, 0, 1000, 800)),
        ("square", (100, 0, 800, 800)),
        ("10,20,30,40", (10, 20, 30, 40)),
        ("900,700,500,500", (900, 700, 100, 100)),  # clipped to the image
        ("pct:10,10,50,50", (100, 80, 500, 400)),
        ("pct:0,0,100,100", (0, 0, 1000, 800)),
        ("pct:99.9,0,0.001,1", (999, 0, 1, 8)),  # a sliver is still one pixel
    ],
)
def test_regions_resolve_to_pixels_inside_the_image(region, expected):
    assert request.region_pixels(parse(region, "max", "0", "default", "jpg").region, 1000, 800) == expected


@pytest.mark.parametrize(
    "size,expected,canonical",
    [
        ("max", (1000, 800), "max"),
        ("500,", (500, 400), "500,400"),
        (",400", (500, 400), "500,400"),
        ("pct:50", (500, 400), "500,400"),
        ("300,300", (300, 300), "300,300"),
        ("!300,300", (300, 240), "300,240"),
        ("!2000,400", (500, 400), "500,400"),
        ("^2000,", (2000, 1600), "^2000,1600"),
        ("^pct:150", (1500, 1200), "^1500,1200"),
        ("^!2000,2000", (2000, 1600), "^2000,1600"),
        ("^max", (4096, 3277), "^4096,3277"),
        ("1000,800", (1000, 800), "max"),
    ],
)
def test_sizes_and_their_canonical_form(size, expected, canonical):
    wanted = _plan(size=size)
    assert wanted.size == expected
    assert wanted.canonical == f"full/{canonical}/0/default.jpg"


@pytest.mark.parametrize("size", ["1001,", ",801", "pct:101", "1001,800", "!2000,3000", "2000,2000"])
def test_upscaling_needs_the_caret(size):
    with pytest.raises(BadRequest, match="upscaling"):
        _plan(size=size)


@pytest.mark.parametrize("size", ["^4097,", "^,4097", "^5000,10", "^pct:1000", "^999999999,999999999"])
def test_sizes_beyond_the_advertised_limits_are_forbidden(size):
    with pytest.raises(Forbidden):
        _plan(size=size)


def test_max_honours_every_limit_and_never_upscales():
    limits = Limits(2000, 1000, 1_000_000)
    assert request.max_size(6000, 4000, limits) == (1224, 816)  # the area binds: 1224 * 816 <= 1,000,000
    assert request.max_size(500, 400, limits) == (500, 400)
    assert request.max_size(500, 400, limits, upscale=True) == (1118, 894)
    assert request.max_size(3000, 100, limits) == (2000, 67)
    assert _plan(width=6000, height=4000, limits=limits).canonical == "full/max/0/default.jpg"


def test_fit_keeps_the_aspect_ratio_inside_the_box():
    assert request.fit(1000, 1, 10, 10) == (10, 1)
    assert request.fit(1, 1000, 10, 10) == (1, 10)
    assert request.fit(1000, 800, 300, 300) == (300, 240)


@pytest.mark.parametrize(
    "rotation,mirror,degrees,canonical",
    [
        ("0", False, 0.0, "0"),
        ("90", False, 90.0, "90"),
        ("!0", True, 0.0, "!0"),
        ("22.50", False, 22.5, "22.5"),
        ("!180", True, 180.0, "!180"),
        ("360", False, 0.0, "0"),
        ("0.125", False, 0.125, "0.125"),
    ],
)
def test_rotation_and_mirroring(rotation, mirror, degrees, canonical):
    wanted = _plan(rotation=rotation)
    assert (wanted.mirror, wanted.rotation) == (mirror, degrees)
    assert wanted.canonical == f"full/max/{canonical}/default.jpg"


def test_canonical_region_is_full_only_for_the_whole_image():
    assert _plan(region="square", width=500, height=500).canonical == "full/max/0/default.jpg"
    assert _plan(region="square").canonical == "100,0,800,800/max/0/default.jpg"
    assert _plan(region="pct:50,50,50,50", quality="gray", fmt="png").canonical == "500,400,500,400/max/0/gray.png"


@pytest.mark.parametrize(
    "region,size,rotation,quality,fmt",
    [
        ("full", "full", "0", "default", "jpg"),  # 2.x syntax
        ("full", "max", "0", "grey", "jpg"),
        ("full", "max", "0", "native", "jpg"),
        ("full", "max", "0", "default", "jpeg"),
        ("full", "max", "0", "default", "JPG"),
        ("Full", "max", "0", "default", "jpg"),
        ("0,0,0,10", "max", "0", "default", "jpg"),
        ("0,0,10", "max", "0", "default", "jpg"),
        ("-1,0,10,10", "max", "0", "default", "jpg"),
        ("1_0,0,10,10", "max", "0", "default", "jpg"),
        ("１0,0,10,10", "max", "0", "default", "jpg"),  # a full-width digit: int() would take it
        ("pct:nan,0,10,10", "max", "0", "default", "jpg"),
        ("pct:1e2,0,10,10", "max", "0", "default", "jpg"),
        ("pct:0,0,0,10", "max", "0", "default", "jpg"),
        ("full", "0,", "0", "default", "jpg"),
        ("full", "pct:0", "0", "default", "jpg"),
        ("full", "!0,10", "0", "default", "jpg"),
        ("full", "^^max", "0", "default", "jpg"),
        ("full", "!^10,10", "0", "default", "jpg"),
        ("full", "10,10,", "0", "default", "jpg"),
        ("full", "max", "361", "default", "jpg"),
        ("full", "max", "-90", "default", "jpg"),
        ("full", "max", "!!90", "default", "jpg"),
        ("full", "max", "inf", "default", "jpg"),
        ("full", "max", "90.", "default", "jpg"),
        ("full", "1" * 100 + ",", "0", "default", "jpg"),
        ("full", "max", "0", "default", "x" * 1000),
    ],
)
def test_malformed_requests_are_bad_requests(region, size, rotation, quality, fmt):
    with pytest.raises(BadRequest):
        _plan(region, size, rotation, quality, fmt)


@pytest.mark.parametrize("fmt", ["gif", "jp2", "pdf"])
def test_valid_formats_not_offered_are_not_implemented(fmt):
    with pytest.raises(NotImplementedHere):
        parse("full", "max", "0", "default", fmt)


def test_a_region_outside_the_image_is_a_bad_request():
    with pytest.raises(BadRequest, match="outside"):
        _plan(region="1000,0,10,10")
    with pytest.raises(BadRequest, match="outside"):
        _plan(region="pct:100,0,10,10")
