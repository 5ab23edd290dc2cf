"""Canonical URLs never come from the request: a forged Host header cannot put its name into a cached answer."""

import pytest

from tests.helpers import photo

BASE = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"
FORGED = {"Host": "evil.example"}


@pytest.fixture
def served_photo(served):
    served.put("maps/photo", photo(640, 480))
    return served


def test_with_a_base_url_ids_links_and_redirects_ignore_a_forged_host(served_photo):
    served_photo.settings = served_photo.settings.with_overrides(dashboard_base_url=BASE + "/")
    client = served_photo.client()
    info = client.get("/iiif/3/maps/photo/info.json", headers=FORGED)
    assert info.get_json()["id"] == f"{BASE}/iiif/3/maps/photo"
    assert info.headers["Cache-Control"] == "public, max-age=300" and "Host" not in info.vary
    tile = client.get("/iiif/3/maps/photo/full/100,/0/default.jpg", headers=FORGED)
    assert tile.status_code == 200 and "evil.example" not in tile.headers["Link"]
    assert tile.headers["Link"].startswith(f"<{BASE}/iiif/3/maps/photo/full/100,75/0/default.jpg>")
    assert tile.headers["Cache-Control"] == "public, max-age=86400"
    base = client.get("/iiif/3/maps/photo", headers=FORGED)
    assert base.headers["Location"] == f"{BASE}/iiif/3/maps/photo/info.json"


def test_with_a_base_url_the_stage_prefix_is_not_doubled(served_photo):
    served_photo.settings = served_photo.settings.with_overrides(dashboard_base_url=BASE)
    client = served_photo.client()
    info = client.get("/iiif/3/maps/photo/info.json", base_url="https://evil.example/dev")
    assert info.get_json()["id"] == f"{BASE}/iiif/3/maps/photo"


def test_without_a_base_url_host_dependent_answers_vary_and_stay_private(served_photo):
    client = served_photo.client()
    info = client.get("/iiif/3/maps/photo/info.json", headers=FORGED)
    assert info.get_json()["id"] == "http://evil.example/iiif/3/maps/photo"  # the local demo has nothing better
    assert "Host" in info.vary and "public" not in info.headers["Cache-Control"]
    tile = client.get("/iiif/3/maps/photo/full/100,/0/default.jpg", headers=FORGED)
    assert "Host" in tile.vary and tile.headers["Cache-Control"].startswith("private")
    again = client.get(
        "/iiif/3/maps/photo/full/100,/0/default.jpg", headers={**FORGED, "If-None-Match": tile.headers["ETag"]}
    )
    assert again.status_code == 304 and "Host" in again.vary and "public" not in again.headers["Cache-Control"]
    refused = client.get("/iiif/3/maps/photo/full/0,/0/default.jpg", headers=FORGED)  # names no URL: cacheable
    assert refused.status_code == 400 and "Host" not in refused.vary
