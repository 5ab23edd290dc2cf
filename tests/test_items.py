"""Documents through S3 and the event path: one item, one job per page, the manifest when the last page is done."""

import json
import time

import jsonschema
import pytest

from app.errors import CorruptImage
from tests.helpers import ENCRYPTED_PDF, SHARED, handmade_pdf
from tests.pipeline.test_documents import multipage_tiff, three_page_pdf
from tests.test_cdn_invalidation import distribution  # noqa: F401 - a fixture


@pytest.fixture
def flowing(cloud):
    cloud.stack.start()
    yield cloud
    cloud.stack.stop()


def _final(cloud, image_id, etag=None, timeout=180):
    """The record of ``image_id`` once final (for the source version ``etag``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = cloud.record(image_id)
        if record and record["status"] in ("done", "failed", "gone") and etag in (None, record["source"]["etag"]):
            return record
        time.sleep(0.3)
    raise AssertionError(f"{image_id} did not finish in {timeout}s: {cloud.record(image_id)}")


def _validator():
    schema_path = SHARED / "iiif-presentation-schema" / "iiif_3_0.json"
    if not schema_path.exists():
        pytest.skip(f"the IIIF Presentation 3 schema is not at {schema_path} (../shared is absent)")
    schema = json.loads(schema_path.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize(
    "name,make", [("ledger.pdf", three_page_pdf), ("scan.tif", lambda path: multipage_tiff(path, [(300, 200)] * 3))]
)
def test_a_document_becomes_an_item_whose_pages_convert_as_images(flowing, tmp_path, name, make):
    cloud = flowing
    item_id = f"archive/{name.rsplit('.', 1)[0]}"
    cloud.upload(f"archive/{name}", make(tmp_path / name).read_bytes())
    item = _final(cloud, item_id)
    assert item["status"] == "done" and item["kind"] == "item", item.get("error")
    assert [page["id"] for page in item["pages"]] == [f"{item_id}/p0001", f"{item_id}/p0002", f"{item_id}/p0003"]
    assert item["progress"] == {"phase": "done", "done": 3, "total": 3}
    manifest = json.loads(cloud.read("tiler-tiles", f"{item_id}/manifest.json"))
    assert list(_validator().iter_errors(manifest)) == []
    assert [canvas["label"]["none"][0] for canvas in manifest["items"]] == ["p. 1", "p. 2", "p. 3"]
    services = [canvas["items"][0]["items"][0]["body"]["service"][0]["id"] for canvas in manifest["items"]]
    assert services == [f"{cloud.url}/tiler-tiles/{item_id}/p{n:04}" for n in (1, 2, 3)]
    assert manifest["thumbnail"][0]["id"].startswith(f"{cloud.url}/tiler-tiles/{item_id}/p0001/full/")
    for page in item["pages"]:
        assert cloud.record(page["id"])["status"] == "done"
        assert {f"{page['id']}/info.json", f"{page['id']}.dzi"} <= cloud.tiles(page["id"])
    assert f"index/done/{item_id}" in cloud.keys("tiler-metadata", "index/done/")
    assert not cloud.keys("tiler-metadata", "index/pages/")


def test_a_failed_page_fails_the_item_unpublished_until_the_page_is_retried(flowing, tmp_path, monkeypatch):
    from app import jobs
    from app.web.catalog import Catalog

    real_convert = jobs.convert

    def second_page_damaged(src, out_dir, settings, image_id, **options):
        if image_id.endswith("/p0002"):
            raise CorruptImage("the pixel data is damaged or truncated: injected")
        return real_convert(src, out_dir, settings, image_id, **options)

    monkeypatch.setattr(jobs, "convert", second_page_damaged)
    flowing.upload("book.pdf", three_page_pdf(tmp_path / "book.pdf").read_bytes())
    item = _final(flowing, "book")
    assert item["status"] == "failed" and "1 of 3 pages failed" in item["error"] and "injected" in item["error"]
    assert [page["status"] for page in item["pages"]] == ["done", "failed", "done"]
    assert "book/manifest.json" not in flowing.tiles("book/")

    monkeypatch.setattr(jobs, "convert", real_convert)  # the page is fixed (say, a transient fault): retry it
    Catalog(flowing.settings).retry("book/p0002")
    deadline = time.monotonic() + 120
    while flowing.record("book")["status"] != "done" and time.monotonic() < deadline:  # the retry, through S3
        time.sleep(0.3)
    assert flowing.record("book")["status"] == "done" and "book/manifest.json" in flowing.tiles("book/")


@pytest.mark.parametrize(
    "body,reason",
    [
        (handmade_pdf(**ENCRYPTED_PDF), "encrypted"),
        (None, "has 10,000 pages, over the limit of 1,000 (MAX_PAGES)"),
    ],
)
def test_a_hostile_document_fails_clearly_and_nothing_is_published(cloud, tmp_path, body, reason):
    from app.events import handle_s3_event
    from app.pipeline import pdf

    if body is None:
        document = pdf._pdfium().PdfDocument.new()
        for _ in range(10_000):
            document.new_page(100, 100)
        document.save(str(tmp_path / "many.pdf"))
        body = (tmp_path / "many.pdf").read_bytes()
    cloud.upload("hostile.pdf", body)
    for event in cloud.events():
        handle_s3_event(event)
    record = cloud.record("hostile")
    assert record["status"] == "failed" and reason in record["error"]
    assert not cloud.tiles() and not cloud.keys("tiler-source", "pages/")
    assert cloud.events() == []  # no page was sent on


def test_the_dashboard_shows_an_item_with_its_pages_and_opens_it_in_mirador(cloud, tmp_path, monkeypatch):
    from app.events import handle_s3_event
    from app.web import create_app
    from config import Settings

    cloud.upload("box/ledger.pdf", three_page_pdf(tmp_path / "ledger.pdf").read_bytes())
    while events := cloud.events():  # the document, then its pages, as S3 delivers them
        for event in events:
            handle_s3_event(event)
    client = create_app(Settings.from_env()).test_client()
    listing = client.get("/").get_data(as_text=True)
    assert "PDF, 3 pages" in listing and f'src="{cloud.url}/tiler-tiles/box/ledger/p0001/full/' in listing
    page = client.get("/images/box/ledger").get_data(as_text=True)
    assert "ledger.pdf: 3 pages" in page and page.count('class="badge done"') == 4
    assert f'href="/mirador?manifest={cloud.url}/tiler-tiles/box/ledger/manifest.json"' in page
    assert 'href="/images/box/ledger/p0002"' in page
    assert f'<img src="{cloud.url}/tiler-tiles/box/ledger/p0003/full/' in page  # each page's thumbnail
    api = client.get("/api/images/box/ledger").get_json()
    assert api["kind"] == "item" and api["urls"] == {
        "manifest": f"{cloud.url}/tiler-tiles/box/ledger/manifest.json",
        "thumbnail": api["urls"]["thumbnail"],
    }


def test_a_new_version_retires_what_the_old_one_published_and_the_new_one_does_not(
    flowing, tmp_path, distribution, monkeypatch
):
    from tests.helpers import photo
    from tests.test_cdn_invalidation import invalidations

    cloud = flowing
    monkeypatch.setenv("IIIF_VERSIONS", "2,3")  # the 2.1 service's keys are retired with the rest
    cloud.upload("scan.tif", photo(300, 200), ".tif")  # first an image ...
    assert _final(cloud, "scan")["status"] == "done" and "scan.dzi" in cloud.tiles("scan")
    assert "iiif/2/scan/info.json" in cloud.tiles("iiif/2/scan")
    etag = cloud.upload("scan.tif", multipage_tiff(tmp_path / "three.tif", [(300, 200)] * 3).read_bytes())  # pages
    assert _final(cloud, "scan", etag)["status"] == "done"
    published = cloud.tiles("scan")
    assert "scan/manifest.json" in published
    assert not {"scan.dzi", "scan/info.json", "scan/full/max/0/default.jpg"} & published
    assert not [key for key in published if key.startswith("scan_files/")] and "scan/p0003.dzi" in published
    v2 = cloud.tiles("iiif/2/scan/")
    assert all(key.startswith("iiif/2/scan/p000") for key in v2) and "iiif/2/scan/p0003/info.json" in v2
    services = json.loads(cloud.read("tiler-tiles", "scan/manifest.json"))["items"][0]["items"][0]["items"][0]
    published_in = cloud.record("scan/p0001").get("iiif_versions", [3])  # as app/jobs.py records the Conversion's
    expected = ["ImageService3"] + (["ImageService2"] if 2 in published_in else [])
    assert [s.get("type") or s.get("@type") for s in services["body"]["service"]] == expected

    etag = cloud.upload("scan.tif", multipage_tiff(tmp_path / "two.tif", [(300, 200)] * 2).read_bytes())
    assert _final(cloud, "scan", etag)["status"] == "done"  # its pages are the first two, unchanged: not re-tiled
    assert len(json.loads(cloud.read("tiler-tiles", "scan/manifest.json"))["items"]) == 2
    assert not [key for key in cloud.tiles("scan/p0003") if key.startswith(("scan/p0003/", "scan/p0003.dzi"))]
    assert not cloud.tiles("iiif/2/scan/p0003/") and cloud.tiles("iiif/2/scan/p0002/")
    assert cloud.record("scan/p0003") is None and "scan/p0002.dzi" in cloud.tiles("scan/p0002")
    assert cloud.keys("tiler-source", "pages/scan/") == {
        key for key in cloud.keys("tiler-source", "pages/scan/") if "@" + cloud.record("scan")["version"] in key
    }
    assert (
        sum(
            batch["Paths"]["Items"] == ["/scan.dzi", "/scan_files/*", "/scan/*", "/iiif/2/scan/*"]
            for batch in invalidations(distribution)
        )
        == 2
    )  # image -> three pages, three pages -> two
