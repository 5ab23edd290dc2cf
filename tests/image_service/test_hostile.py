"""Hostile requests get a short 4xx before any S3 call or pixel work; enormous ones never decode much."""

import pytest

from app.pipeline import render
from app.pipeline.render import DECODE_BUDGET, Pyramid, choose_page, page_crop
from app.storage.s3 import S3Storage
from app.storage.tile_pyramid import TILES
from tests.helpers import photo
from tests.image_service.conftest import app_for

HOSTILE_IDS = [
    "../etc/passwd",
    "a/../../etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..%2F..%2Fsecrets",
    ".hidden",
    "a/./b",
    "[frob]",
    "a%00b",
    "a%09b",
    "~root",
    "a%20b",
    "x" * 600,
    "a/" * 300 + "b",
    "%C3%A9t%C3%A9",
    "C:%5Cwindows",
]


@pytest.fixture
def client(served):
    served.put("img", photo(600, 400))
    return served.client()


@pytest.fixture
def no_storage(settings, monkeypatch):
    """A client of an app whose S3 fails the test if it is asked anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("a hostile request reached S3")

    monkeypatch.setattr(S3Storage, "head", refuse)
    monkeypatch.setattr(S3Storage, "read_bytes", refuse)
    monkeypatch.setattr(S3Storage, "get_json", refuse)
    return app_for(settings).test_client()


def _short_refusal(response, statuses=(400, 404)):
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True))
    assert len(response.data) < 200 and response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("image_id", HOSTILE_IDS)
def test_traversal_shaped_odd_or_over_long_ids_are_not_found_without_asking_s3(no_storage, image_id):
    for path in (f"/iiif/3/{image_id}/info.json", f"/iiif/3/{image_id}/full/max/0/default.jpg", f"/iiif/3/{image_id}"):
        _short_refusal(no_storage.get(path))


def test_line_breaks_in_an_id_match_no_route_and_inject_no_header(no_storage):
    response = no_storage.get("/iiif/3/a%0d%0aSet-Cookie:%20x=1/info.json")  # werkzeug's converters stop at line breaks
    assert response.status_code == 404 and "x=1" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    "params",
    [
        "full/full/0/default.jpg",
        "full/max/0/default.jpeg",
        "full/max/0/native.jpg",
        "full/max/0/grey.jpg",
        "pct:a,b,c,d/max/0/default.jpg",
        "0,0,0,0/max/0/default.jpg",
        "-5,0,10,10/max/0/default.jpg",
        "full/0,0/0/default.jpg",
        "full/pct:-5/0/default.jpg",
        "full/max/-90/default.jpg",
        "full/max/400/default.jpg",
        "full/max/NaN/default.jpg",
        "full/max/1e2/default.jpg",
        "full/max/0/default.",
        "full/max/0/default.j%00pg",
        "%27%3B--/max/0/default.jpg",
        "full/max/0/%3Cscript%3E.png",
        "1" * 10_000 + ",0,1,1/max/0/default.jpg",
        "full/" + "9" * 5000 + ",/0/default.jpg",
        "full/max/0/default." + "x" * 100_000,
    ],
)
def test_malformed_parameters_are_bad_requests_before_s3(no_storage, params):
    response = no_storage.get(f"/iiif/3/img/{params}")
    if params.endswith("default."):  # no format at all: not an image request, the base URI of an odd id
        assert response.status_code in (303, 404)
        return
    _short_refusal(response, (400,))


@pytest.mark.parametrize(
    "params,status",
    [
        ("full/99999999,/0/default.jpg", 400),  # upscaling without ^
        ("full/^99999999,/0/default.jpg", 403),
        ("full/^999999999,999999999/0/default.png", 403),
        ("full/^pct:999999999/0/default.jpg", 403),
        ("full/^4097,/0/default.jpg", 403),
        ("999999999,999999999,1,1/max/0/default.jpg", 400),  # outside the image
        ("pct:100,0,1,1/max/0/default.jpg", 400),
    ],
)
def test_enormous_requests_are_refused_before_any_pixel_work(client, monkeypatch, params, status):
    def refuse(*args, **kwargs):
        raise AssertionError("an enormous request was rendered")

    monkeypatch.setattr(render, "render", refuse)
    _short_refusal(client.get(f"/iiif/3/img/{params}"), (status,))


def test_a_huge_region_is_clipped_to_the_image_and_served(client):
    response = client.get("/iiif/3/img/0,0,999999999,999999999/max/0/default.jpg")
    assert response.status_code == 200
    assert 'rel="canonical"' in response.headers["Link"] and "/full/max/0/default.jpg>" in response.headers["Link"]


def test_refusals_are_fast_they_read_none_of_the_image_and_decode_nothing(served, client, monkeypatch):
    """Refusing costs the same for any image: an enormous request is refused after the job record (which version,
    how large), with no tile read and no pixel decoded."""
    TILES.clear()  # no tile kept in memory to answer from

    def refuse(*args, **kwargs):
        raise AssertionError("a refused request read the image's pixels")

    monkeypatch.setattr(render, "render", refuse)
    cloud = served.cloud
    with (
        cloud.requests_to(served.settings.tiles_bucket) as tiles,
        cloud.requests_to(cloud.settings.metadata_bucket) as records,
    ):
        for _ in range(50):
            _short_refusal(client.get("/iiif/3/img/full/^99999999,/0/default.jpg"), (403,))
    assert not tiles  # nothing of the image's pixels
    assert (
        records == [("GET", f"/{cloud.settings.metadata_bucket}/jobs/img.json")] * 50
    )  # its record alone: which version, how large


def test_decoding_is_bounded_by_the_output_not_the_image():
    pyramid = Pyramid(
        (
            (60000, 40000),
            (30000, 20000),
            (15000, 10000),
            (7500, 5000),
            (3750, 2500),
            (1875, 1250),
            (937, 625),
            (468, 312),
        )
    )
    whole = (0, 0, 60000, 40000)
    for size in [(1, 1), (256, 171), (4096, 2731), (4096, 1), (1, 4096), (4000, 4000)]:
        index = choose_page(pyramid, whole, size)
        _, _, w, h = page_crop(pyramid, index, whole)
        assert w * h <= DECODE_BUDGET * (size[0] * size[1] + 512 * 512) or index == len(pyramid.pages) - 1
    assert choose_page(pyramid, whole, (4096, 2731)) == 3  # 7500x5000: the smallest page with enough pixels
    assert choose_page(pyramid, (1024, 1024, 512, 512), (512, 512)) == 0
    assert choose_page(pyramid, (0, 0, 2048, 2048), (512, 512)) == 2
