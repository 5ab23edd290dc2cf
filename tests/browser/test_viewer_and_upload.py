"""A person's view: OpenSeadragon draws real tiles from both sources; an upload through the page reaches done."""

import io
import re

import pytest

from app.events import handle_s3_event
from app.ids import image_id_for
from tests.browser.conftest import screenshot
from tests.helpers import photo

pytestmark = pytest.mark.browser
FULLY_LOADED = (
    "() => window.tilerViewer && window.tilerViewer.world.getItemCount() === 1"
    " && window.tilerViewer.world.getItemAt(0).getFullyLoaded()"
)


def _watch_tiles(page, cloud_url):
    seen = {"ok": [], "failed": []}
    page.on(
        "response",
        lambda r: (
            r.url.startswith(f"{cloud_url}/tiler-tiles/")
            and r.url.endswith(".jpg")
            and seen["ok" if r.status == 200 else "failed"].append(r.url)
        ),
    )
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
    page.wait_for_function(
        FULLY_LOADED + " && window.tilerViewer.world.getItemAt(0).source.id"
        " && window.tilerViewer.world.getItemAt(0).source.id.endsWith('/gallery/view')",
        timeout=30_000,
    )
    iiif_tiles = [url for url in seen["ok"] if "/gallery/view/" in url and url.endswith("/0/default.jpg")]
    assert iiif_tiles and seen["failed"] == []
    screenshot(page, "viewer-iiif")


def _record_posts(cloud, monkeypatch):
    """The bodies of the form POSTs the endpoint receives, as sent (the browser does not show a file's upload body)."""
    server, posts = cloud.endpoint._server, []  # the werkzeug server of tooling.local_s3.LocalS3
    served = server.app

    def recording(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            posts.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            environ["wsgi.input"] = io.BytesIO(posts[-1])
        return served(environ, start_response)

    monkeypatch.setattr(server, "app", recording)
    return posts


def test_an_upload_through_the_page_reaches_done(cloud, dashboard, page, tmp_path, monkeypatch):
    src = tmp_path / "dropped scan.jpg"
    photo(900, 600).jpegsave(str(src))
    posts = _record_posts(cloud, monkeypatch)
    cloud.stack.start()  # S3 events now flow to the handler, as in a deployment
    try:
        page.goto(f"{dashboard}/login")
        page.fill("input[name=password]", "open sesame")
        page.click("form button")
        page.wait_for_url(f"{dashboard}/", wait_until="load")  # images.js has bound the file input by then
        page.set_input_files("#files", str(src))
        page.wait_for_selector("#upload-list li:has-text('uploaded')", timeout=30_000)
        page.wait_for_selector("tr[data-status=done] >> text=dropped_scan", timeout=60_000)
        page.wait_for_selector("#upload-list li:has-text('converted')", timeout=10_000)
        notes = tmp_path / "notes.txt"
        notes.write_text("not an image")
        page.set_input_files("#files", str(notes))  # the server signs no form for it, and the page says why
        page.wait_for_selector(
            "#upload-list li:has-text('failed: notes.txt: text/plain is not accepted')", timeout=10_000
        )
    finally:
        cloud.stack.stop()
    screenshot(page, "uploaded")
    (key,) = cloud.keys(cloud.settings.source_bucket)  # under a fresh key of its own, in the uploads folder
    assert re.fullmatch(r"uploads/dropped scan-[0-9a-f]{8}\.jpg", key)
    assert cloud.s3.head_object(Bucket=cloud.settings.source_bucket, Key=key)["ContentType"] == "image/jpeg"
    assert cloud.record(image_id_for(key))["source"]["key"] == key
    (body,) = posts  # S3 reads no form field after the file: the signed Content-Type goes before it
    assert body.index(b'name="Content-Type"\r\n\r\nimage/jpeg\r\n') < body.index(b'name="file"')
