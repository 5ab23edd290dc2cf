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
    while events := cloud.events():  # uploads, the task, its batch, then the conversions the batch asked for
        for event in events:
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


def test_mirador_reads_a_paged_right_to_left_item_in_order_and_shows_its_catalogue_metadata(cloud, dashboard, page):
    for number in (1, 2, 3):
        cloud.upload(f"scrolls/Sutra/Sutra_{number:03}.jpg", photo(600, 800))
    cloud.upload(
        "scrolls/items.csv",
        b"identifier,title [en],Creator,Date,behavior,viewing direction,rights,attribution\n"
        b"Sutra,Lotus Sutra,Unknown scribe|Temple workshop,Edo period,paged,right-to-left,"
        b"http://rightsstatements.org/vocab/NoC-US/1.0/,Courtesy of the Temple Library\n",
    )
    task = {"collection": "scrolls", "source_prefix": "scrolls/", "csv": "scrolls/items.csv"}
    cloud.upload("tasks/scrolls.json", json.dumps(task).encode())
    while events := cloud.events():  # uploads, the task, its batch, then the conversions the batch asked for
        for event in events:
            handle_s3_event(event)
    manifest_url = f"{cloud.url}/tiler-tiles/collections/scrolls/Sutra/manifest.json"
    manifest = json.loads(cloud.read("tiler-tiles", "collections/scrolls/Sutra/manifest.json"))
    assert (manifest["behavior"], manifest["viewingDirection"]) == (["paged"], "right-to-left")

    page.goto(f"{dashboard}/mirador?manifest={manifest_url}")
    page.wait_for_function(
        "() => document.querySelector('.openseadragon-canvas canvas')"
        " && document.querySelector('.openseadragon-canvas canvas').width > 0",
        timeout=30_000,
    )
    # Book view (paged): page 1 alone, then pages 2-3 as a spread; right to left, so later pages lie further left.
    first = page.locator(".mirador-thumbnail-nav-canvas-0").bounding_box()
    spread = page.locator(".mirador-thumbnail-nav-canvas-1").bounding_box()
    assert first and spread and spread["x"] < first["x"]
    pair = page.locator(".mirador-thumbnail-nav-canvas-1 img")
    assert pair.count() == 2
    page_two, page_three = (pair.nth(n).bounding_box() for n in (0, 1))
    assert page_three["x"] < page_two["x"]  # within the spread too, page 3 is on the left
    assert "Sutra_002" in pair.nth(0).get_attribute("src") and "Sutra_003" in pair.nth(1).get_attribute("src")

    page.click("button[aria-label='Toggle sidebar']")
    panel = page.locator(".mirador-window-sidebar-info-panel")  # "About this item": the manifest's metadata
    panel.get_by_text("Edo period").wait_for(timeout=10_000)
    text = panel.inner_text()
    for shown in ("Lotus Sutra", "Creator", "Unknown scribe", "Temple workshop", "Date", "Edo period"):
        assert shown in text
    screenshot(page, "mirador-right-to-left")
    page.click("[role='tab'][aria-label='Rights']")  # the rights panel: requiredStatement and rights
    rights = page.locator(".mirador-attribution-panel")
    rights.get_by_text("Courtesy of the Temple Library").wait_for(timeout=10_000)
    assert rights.locator("a[href='http://rightsstatements.org/vocab/NoC-US/1.0/']").count() == 1
