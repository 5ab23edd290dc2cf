"""A person's view: OpenSeadragon draws real tiles from both sources; an upload through the page reaches done."""

import pytest

from app.events import handle_s3_event
from tests.browser.conftest import screenshot
from tests.helpers import photo

pytestmark = pytest.mark.browser
FULLY_LOADED = ("() => window.tilerViewer && window.tilerViewer.world.getItemCount() === 1"
                " && window.tilerViewer.world.getItemAt(0).getFullyLoaded()")


def _watch_tiles(page, cloud_url):
    seen = {"ok": [], "failed": []}
    page.on("response", lambda r: r.url.startswith(f"{cloud_url}/tiler-tiles/") and r.url.endswith(".jpg")
            and seen["ok" if r.status == 200 else "failed"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    return seen


def test_openseadragon_draws_deep_zoom_and_iiif_tiles(cloud, dashboard, page):
    cloud.upload("gallery/view.jpg", photo(2400, 1600))
    handle_s3_event(cloud.events()[0])
    seen = _watch_tiles(page, cloud.url)

    page.goto(f"{dashboard}/images/gallery/view")
    page.wait_for_function(FULLY_LOADED, timeout=30_000)
    dzi_tiles = [url for url in seen["ok"] if "/gallery/view_files/" in url]
    assert dzi_tiles and seen["failed"] == []
    screenshot(page, "viewer-deep-zoom")

    page.click(".switch button[data-source=iiif]")
    page.wait_for_function(FULLY_LOADED + " && window.tilerViewer.world.getItemAt(0).source.id"
                           " && window.tilerViewer.world.getItemAt(0).source.id.endsWith('/gallery/view')", timeout=30_000)
    iiif_tiles = [url for url in seen["ok"] if "/gallery/view/" in url and url.endswith("/0/default.jpg")]
    assert iiif_tiles and seen["failed"] == []
    screenshot(page, "viewer-iiif")


def test_an_upload_through_the_page_reaches_done(cloud, dashboard, page, tmp_path):
    src = tmp_path / "dropped scan.jpg"
    photo(900, 600).jpegsave(str(src))
    cloud.stack.start()  # S3 events now flow to the handler, as in a deployment
    try:
        page.goto(f"{dashboard}/login")
        page.fill("input[name=password]", "open sesame")
        page.click("form button")
        page.set_input_files("#files", str(src))
        page.wait_for_selector("#upload-list li:has-text('uploaded')", timeout=30_000)
        page.wait_for_selector("tr[data-status=done] >> text=dropped_scan", timeout=60_000)
        page.wait_for_selector("#upload-list li:has-text('converted')", timeout=10_000)
    finally:
        cloud.stack.stop()
    screenshot(page, "uploaded")
    assert cloud.record("dropped_scan")["source"]["key"] == "dropped scan.jpg"
