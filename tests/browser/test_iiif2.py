"""2.x clients' view: OpenSeadragon draws from the static and the dynamic Image API 2.1 services, Mirador opens the
Presentation 2.1 manifest and draws its canvas from the 2.1 tiles."""

import json
import re

import pytest

from app.events import handle_s3_event
from tests.browser.conftest import screenshot
from tests.helpers import photo

pytestmark = pytest.mark.browser
LOADED = (
    "(id) => window.tilerViewer && window.tilerViewer.world.getItemCount() === 1"
    " && window.tilerViewer.world.getItemAt(0).getFullyLoaded()"
    " && window.tilerViewer.world.getItemAt(0).source._id === id"
)


def _convert_both(cloud, monkeypatch, key, image_id):
    monkeypatch.setenv("IIIF_VERSIONS", "2,3")
    monkeypatch.setenv("IIIF_PRESENTATION_VERSIONS", "2,3")
    cloud.upload(key, photo(2400, 1600))
    handle_s3_event(cloud.events()[-1])
    record = cloud.record(image_id)  # the versions, as app/jobs.py records them from the Conversion
    record.setdefault("iiif_versions", [3, 2])
    record.setdefault("presentation_versions", [3, 2])
    cloud.s3.put_object(Bucket=cloud.settings.metadata_bucket, Key=f"jobs/{image_id}.json", Body=json.dumps(record))


def _watch(page, prefix):
    """Image answers under ``prefix``: drawn (200), redirected (302), or failed."""
    seen = {"ok": [], "redirected": [], "failed": []}

    def sort(response):
        if response.url.startswith(prefix) and response.url.endswith(".jpg"):
            kind = {200: "ok", 302: "redirected"}.get(response.status, "failed")
            seen[kind].append(response.url)

    page.on("response", sort)
    page.on("requestfailed", lambda r: r.url.startswith(prefix) and seen["failed"].append(f"{r.url} {r.failure}"))
    return seen


def test_openseadragon_draws_the_static_and_the_dynamic_2_1_services(cloud, dashboard, page, monkeypatch):
    _convert_both(cloud, monkeypatch, "gallery/old.jpg", "gallery/old")
    static = f"{cloud.url}/tiler-tiles/iiif/2/gallery/old"
    seen = _watch(page, f"{static}/")
    page.goto(f"{dashboard}/images/gallery/old")
    page.click(".switch button[data-source=iiif2]")
    page.wait_for_function(LOADED, arg=static, timeout=30_000)
    assert seen["ok"] and seen["failed"] == []
    assert any("/512,/0/default.jpg" in url for url in seen["ok"])  # 2.1 level-0 tile names: w,
    screenshot(page, "viewer-iiif2")

    dynamic = f"{dashboard}/iiif/2/gallery/old"
    rendered = _watch(page, f"{dynamic}/")
    page.evaluate("(url) => window.tilerViewer.open(url)", f"{dynamic}/info.json")
    page.wait_for_function(LOADED, arg=dynamic, timeout=30_000)
    assert rendered["failed"] == [] and seen["failed"] == []
    assert rendered["ok"] and rendered["redirected"] == []  # the viewer asks for tiles: each answered as published
    asked = {re.sub(r"/(\d+),\d+/0/", r"/\1,/0/", url.removeprefix(dynamic)) for url in rendered["ok"]}
    assert asked <= {url.removeprefix(static) for url in seen["ok"]}  # w,h asked, the w, file's tiles


def test_mirador_opens_the_presentation_2_1_manifest_and_draws_the_2_1_tiles(cloud, dashboard, page, monkeypatch):
    _convert_both(cloud, monkeypatch, "album/leaf.jpg", "album/leaf")
    manifest = f"{cloud.url}/tiler-tiles/iiif/2/album/leaf/manifest.json"
    seen = _watch(page, f"{cloud.url}/tiler-tiles/iiif/2/album/leaf/")
    page.goto(f"{dashboard}/images/album/leaf")
    with page.expect_response(lambda r: r.url.startswith(f"{cloud.url}/tiler-tiles/iiif/2/") and r.ok, timeout=30_000):
        page.click(f"a[href='/mirador?manifest={manifest}']")
    page.wait_for_function(
        "() => document.querySelector('.openseadragon-canvas canvas')"
        " && document.querySelector('.openseadragon-canvas canvas').width > 0",
        timeout=30_000,
    )
    page.wait_for_timeout(1500)
    assert seen["ok"] and seen["failed"] == []
    assert page.locator("text=leaf").first.is_visible()
    screenshot(page, "mirador-presentation-2")
