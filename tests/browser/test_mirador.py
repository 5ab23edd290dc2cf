"""Mirador (vendored) opens an item manifest of a collection and draws its first canvas from our tiles."""

import json

import pytest

from app.events import handle_s3_event
from tests.browser.conftest import screenshot
from tests.helpers import photo

pytestmark = pytest.mark.browser


def test_mirador_draws_the_first_canvas_of_a_collection_manifest(cloud, dashboard, page):
    for number in (1, 2):
        cloud.upload(f"album/Leaf/Access/Leaf_{number:03}.jpg", photo(1400, 1000))
    cloud.upload("tasks/album.json", json.dumps({"collection": "album", "source_prefix": "album/"}).encode())
    for _ in range(3):  # uploads, the task, then the conversions the task asked for
        for event in cloud.events():
            handle_s3_event(event)
    manifest_url = f"{cloud.url}/tiler-tiles/collections/album/Leaf/manifest.json"
    assert json.loads(cloud.read("tiler-tiles", "collections/album/Leaf/manifest.json"))["items"]

    drawn, failed = [], []
    page.on(
        "response",
        lambda r: (
            "/tiler-tiles/album/Leaf/Access/Leaf_001/" in r.url
            and r.url.endswith(".jpg")
            and (drawn if r.status == 200 else failed).append(r.url)
        ),
    )
    page.on("requestfailed", lambda r: "/tiler-tiles/" in r.url and failed.append(r.url))
    page.goto(f"{dashboard}/collections/album")
    page.click("table.kv >> text=Open in Mirador")  # the item (Leaf), a manifest of the collection
    page.wait_for_selector(".openseadragon-canvas canvas", timeout=30_000)
    page.wait_for_function("() => document.querySelector('.openseadragon-canvas canvas').width > 0", timeout=30_000)
    page.wait_for_timeout(1500)
    assert drawn and failed == []
    assert page.locator("text=Leaf").first.is_visible()
    screenshot(page, "mirador")
    assert manifest_url in page.url or "manifest=" in page.url


def test_mirador_opens_a_documents_item_from_its_page_and_draws_page_one(cloud, dashboard, page, tmp_path):
    from tests.pipeline.test_documents import three_page_pdf

    cloud.upload("box/ledger.pdf", three_page_pdf(tmp_path / "ledger.pdf").read_bytes())
    while events := cloud.events():  # the document, then its pages
        for event in events:
            handle_s3_event(event)
    failed = []
    page.on("requestfailed", lambda r: "/tiler-tiles/" in r.url and failed.append(r.url))
    page.goto(f"{dashboard}/images/box/ledger")
    assert page.locator("text=p. 3").is_visible()
    screenshot(page, "item-page")
    with page.expect_response(
        lambda r: "/tiler-tiles/box/ledger/p0001/" in r.url and r.url.endswith(".jpg") and r.status == 200,
        timeout=30_000,
    ):
        page.click("text=Open in Mirador")
    page.wait_for_function(
        "() => document.querySelector('.openseadragon-canvas canvas')"
        " && document.querySelector('.openseadragon-canvas canvas').width > 0",
        timeout=30_000,
    )
    assert failed == [] and page.locator("text=ledger").first.is_visible()
    screenshot(page, "mirador-document")
