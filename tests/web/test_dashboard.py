"""Dashboard pages and JSON API, served by the Flask test client from records the real handler wrote."""

import json
import re

import pytest

from app.errors import TransientError
from app.events import handle_s3_event
from app.ids import image_id_for
from app.web import create_app
from config import Settings
from tests.helpers import exiftool_write, photo, sign_in


def _convert(cloud, key, image=None, suffix=".jpg"):
    cloud.upload(key, image if image is not None else photo(600, 400), suffix)
    for event in cloud.events():
        handle_s3_event(event)


def test_images_page_lists_jobs_with_thumbnails_status_and_cost(cloud, client):
    _convert(cloud, "maps/one.jpg")
    cloud.upload("broken.jpg", b"nope")
    for event in cloud.events():
        handle_s3_event(event)
    page = client.get("/").get_data(as_text=True)
    assert "maps/one" in page and "broken" in page
    assert f'src="{cloud.url}/tiler-tiles/maps/one/full/' in page  # thumbnail from the declared sizes
    assert 'class="badge done"' in page and 'class="badge failed"' in page
    assert "not an image format libvips recognises" in page
    assert re.search(r"2 images on this page · \$0\.\d{4} estimated cost", page)


def test_status_filter_and_pages_use_s3_listing(cloud, client, monkeypatch):
    for number in range(3):
        _convert(cloud, f"p{number}.jpg", photo(100, 80))
    cloud.upload("bad.jpg", b"nope")
    handle_s3_event(cloud.events()[0])
    failed = client.get("/?status=failed").get_data(as_text=True)
    assert "bad" in failed and "p0" not in failed

    monkeypatch.setenv("PAGE_SIZE", "2")
    small = create_app(Settings.from_env()).test_client()
    first = small.get("/api/images").get_json()
    assert len(first["images"]) == 2 and first["next_token"]
    second = small.get("/api/images", query_string={"token": first["next_token"]}).get_json()
    assert {i["id"] for i in first["images"]} | {i["id"] for i in second["images"]} == {"p0", "p1", "p2", "bad"}
    assert small.get("/?status=nonsense").status_code == 400


def test_image_page_has_viewer_urls_metadata_and_embed_snippet(cloud, client, tmp_path):
    src = tmp_path / "tagged.jpg"
    photo(300, 200).jpegsave(str(src))
    exiftool_write(src, "-XMP-dc:Title=<script>alert('meta')</script>", "-EXIF:Make=TestCam")
    _convert(cloud, "tagged.jpg", src.read_bytes())
    page = client.get("/images/tagged").get_data(as_text=True)
    assert f'data-dzi="{cloud.url}/tiler-tiles/tagged.dzi"' in page
    assert f'data-iiif="{cloud.url}/tiler-tiles/tagged/info.json"' in page
    assert "openseadragon.min.js" in page and "cdn" not in page.split("<pre")[0]  # vendored for ourselves
    assert "TestCam" in page and "&lt;script&gt;alert(" in page and "<script>alert(" not in page
    assert page.count('class="swatch"') >= 1  # the dominant colours
    assert "OpenSeadragon({ id: &#34;zoom&#34;" in page  # the snippet is shown, not run
    assert f"{cloud.url}/tiler-tiles/tagged/manifest.json" in page and "Open in Mirador" in page
    download = client.get("/images/tagged/metadata.json")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.get_json()["exiftool"]["EXIF:Make"] == "TestCam"


def test_image_page_offers_no_manifest_for_an_image_converted_without_one(cloud, client, monkeypatch):
    monkeypatch.setenv("IIIF_MANIFESTS", "false")
    _convert(cloud, "plain.jpg")
    page = client.get("/images/plain").get_data(as_text=True)
    assert 'data-dzi="' in page and "manifest.json" not in page and "Open in Mirador" not in page
    assert "manifest" not in client.get("/api/images/plain").get_json()["urls"]


def test_api_reports_records_with_urls_and_costs(cloud, client):
    _convert(cloud, "api.jpg")
    body = client.get("/api/images/api").get_json()
    assert body["status"] == "done" and body["urls"]["info"].endswith("/tiler-tiles/api/info.json")
    assert body["cost_usd"]["total"] > 0 and body["cost"]["s3"]["write_requests"] > 0
    assert client.get("/api/images/nope").status_code == 404
    assert client.get("/api/images/../../etc/passwd").status_code == 404
    assert client.get("/healthz").get_json() == {"ok": True}


def test_works_under_an_api_gateway_stage_prefix(cloud, client):
    _convert(cloud, "staged.jpg")
    page = client.get("/", base_url="http://example.org/dev/").get_data(as_text=True)
    assert 'href="/dev/images/staged"' in page and 'href="/dev/static/css/dashboard.css"' in page
    assert client.get("/images/staged", base_url="http://example.org/dev/").status_code == 200


def test_nothing_from_the_environment_is_rendered(cloud, client, monkeypatch):
    _convert(cloud, "quiet.jpg")
    pages = "".join(
        client.get(url).get_data(as_text=True)
        for url in ("/", "/images/quiet", "/api/images", "/api/images/quiet", "/login")
    )
    assert "open sesame" not in pages and "AWS_SECRET_ACCESS_KEY" not in pages


def test_read_only_without_a_password(cloud, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PASSWORD", "")
    client = create_app(Settings.from_env()).test_client()
    _convert(cloud, "ro.jpg")
    assert 'id="upload"' not in client.get("/").get_data(as_text=True)
    assert client.post("/api/uploads", json={"filename": "x.jpg"}).status_code == 403
    assert client.post("/images/ro/retry").status_code == 403


def test_uploads_need_sign_in_and_csrf(cloud, client):
    assert client.post("/api/uploads", json={"filename": "x.jpg"}).status_code == 401
    csrf = sign_in(client)
    assert client.post("/api/uploads", json={"filename": "x.jpg"}).status_code == 400  # no CSRF token
    form = client.post(
        "/api/uploads", json={"filename": "new scan.tif", "content_type": "image/tiff"}, headers={"X-CSRF-Token": csrf}
    ).get_json()
    assert re.fullmatch(r"uploads/new scan-[0-9a-f]{8}\.tif", form["key"]) and form["id"] == image_id_for(form["key"])
    assert form["id"].startswith("uploads/new_scan-")
    assert form["url"] == f"{cloud.url}/tiler-source"
    assert form["fields"]["key"] == form["key"] and form["fields"]["Content-Type"] == "image/tiff"


@pytest.mark.parametrize(
    "filename",
    [
        "x\x00.jpg",
        "\u202egpj.exe",
        "a\u200eb.jpg",
        "a\u200fb.jpg",
        "a\u2066b\u2069.jpg",
        "tab\t.jpg",
        "../x.jpg",
        "tasks/x.json",
        "C:\\photos\\scan.tif",
        ".hidden.jpg",
        "a" * 300 + ".jpg",
        "\u00e9" * 128,
        "",
        "   ",
        "x${filename}.jpg",
    ],
)
def test_upload_names_that_could_hide_or_escape_answer_400(cloud, client, filename):
    csrf = sign_in(client)
    answer = client.post(
        "/api/uploads", json={"filename": filename, "content_type": "image/jpeg"}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 400 and answer.get_json()["error"]
    assert cloud.keys("tiler-source") == set()


def test_upload_forms_are_for_accepted_media_types_and_sizes_only(cloud, client, monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "1000")
    limited = create_app(Settings.from_env()).test_client()
    csrf = sign_in(limited)

    def ask(**body):
        return limited.post("/api/uploads", json={"filename": "scan.jpg", **body}, headers={"X-CSRF-Token": csrf})

    assert "text/html is not accepted" in ask(content_type="text/html").get_json()["error"]
    assert "1001 bytes" in ask(content_type="image/jpeg", size=1001).get_json()["error"]
    assert ask(content_type="image/jpeg", size=0).status_code == 400
    assert ask(content_type="image/jpeg", size=1000).status_code == 200
    assert ask(content_type="application/pdf", filename="master.pdf").status_code == 200
    guessed = ask(filename="Photo.JPG").get_json()  # a browser that knows no type: the name's, signed as such
    assert guessed["fields"]["Content-Type"] == "image/jpeg"
    assert ask(filename="notes.txt").status_code == 400
    composed = ask(filename="  Cafe\u0301.jpg ", content_type="image/jpeg").get_json()
    assert re.fullmatch("uploads/Caf\u00e9-[0-9a-f]{8}\\.jpg", composed["key"])  # NFC, stripped


def test_an_upload_form_never_names_an_existing_key(cloud, client, monkeypatch):
    from app.web import catalog

    csrf = sign_in(client)

    def ask():
        return client.post(
            "/api/uploads", json={"filename": "scan.jpg", "content_type": "image/jpeg"}, headers={"X-CSRF-Token": csrf}
        ).get_json()

    first, second = ask(), ask()
    assert first["key"] != second["key"] and first["id"] != second["id"]  # two drops of one name both land

    tokens = iter(["0badc0de", "0badc0de", "600dc0de"])
    monkeypatch.setattr(catalog.secrets, "token_hex", lambda size: next(tokens))
    taken = ask()
    cloud.s3.put_object(Bucket="tiler-source", Key=taken["key"], Body=b"first")
    fresh = ask()  # the same suffix comes up again: the HEAD finds the key taken, and the next one is used
    assert (taken["key"], fresh["key"]) == ("uploads/scan-0badc0de.jpg", "uploads/scan-600dc0de.jpg")
    assert cloud.read("tiler-source", taken["key"]) == b"first"

    monkeypatch.setattr(catalog.secrets, "token_hex", lambda size: "0badc0de")
    with pytest.raises(TransientError, match="no free key"):
        catalog.Catalog(Settings.from_env()).upload_form("scan.jpg", "image/jpeg")


def test_retry_resubmits_a_failed_job_through_the_event_path(cloud, client, monkeypatch):
    from app.storage.publishing import Publisher

    cloud.upload("flaky.jpg", photo(300, 200).write_to_buffer(".jpg"))
    (event,) = cloud.events()
    monkeypatch.setattr(Publisher, "upload", lambda *args: (_ for _ in ()).throw(RuntimeError("S3 hiccup")))
    with pytest.raises(RuntimeError):
        handle_s3_event(event)
    monkeypatch.undo()
    assert cloud.record("flaky")["status"] == "retrying"

    csrf = sign_in(client)
    assert client.post("/images/flaky/retry", data={"csrf": "wrong"}).status_code == 400
    response = client.post("/images/flaky/retry", data={"csrf": csrf})
    assert response.status_code == 302
    (again,) = cloud.events()
    assert again["Records"][0]["eventName"].startswith("ObjectCreated:")
    handle_s3_event(again)
    assert cloud.record("flaky")["status"] == "done"
    done = client.post("/images/flaky/retry", data={"csrf": csrf}, follow_redirects=True).get_data(as_text=True)
    assert "Cannot retry: the job is done" in done


def test_a_page_costs_the_same_requests_however_many_images_there_are(cloud, monkeypatch):
    """Listing is one S3 LIST per page plus one GET per shown record: 10,000 images page as fast as 100."""
    from app.web.catalog import Catalog

    for number in range(120):
        image_id = f"bulk/{number:04}"
        record = {
            "id": image_id,
            "status": "done" if number % 3 else "failed",
            "route": "lambda",
            "source": {"bucket": "tiler-source", "key": f"{image_id}.jpg", "etag": "e", "size": 1000},
            "progress": {"phase": "done", "done": 1, "total": 1},
            "updated_at": "2026-01-01T00:00:00+00:00",
            "error": None if number % 3 else "broken",
        }
        cloud.s3.put_object(Bucket="tiler-metadata", Key=f"jobs/{image_id}.json", Body=json.dumps(record))
        cloud.s3.put_object(Bucket="tiler-metadata", Key=f"index/{record['status']}/{image_id}", Body=b"{}")
    monkeypatch.setenv("PAGE_SIZE", "25")
    catalog = Catalog(Settings.from_env())

    first = catalog.page(None, None)
    assert len(first.records) == 25 and catalog.store.requests == {"write": 1, "read": 25}
    failed = catalog.page("failed", None)
    assert len(failed.records) == 25 and all(r["status"] == "failed" for r in failed.records)
    assert catalog.store.requests == {"write": 2, "read": 50}
    rest, token = [], failed.next_token
    while token:
        page = catalog.page("failed", token)
        rest += page.records
        token = page.next_token
    assert len(failed.records) + len(rest) == 40
    app = create_app(Settings.from_env())
    assert app.test_client().get("/?status=failed").status_code == 200


def test_collections_pages_show_progress_failures_and_mirador_links(cloud, client):
    cloud.upload("set/A/1.jpg", photo(120, 90))
    cloud.upload("set/B/1.jpg", b"broken")
    cloud.upload(
        "tasks/set.json", json.dumps({"collection": "set", "label": "<b>Set</b>", "source_prefix": "set/"}).encode()
    )
    while events := cloud.events():  # uploads, the task, its batch, the conversions
        for event in events:
            handle_s3_event(event)
    listing = client.get("/collections").get_data(as_text=True)
    assert 'href="/collections/set"' in listing and "1 of 2" in listing and "&lt;b&gt;Set&lt;/b&gt;" in listing
    detail = client.get("/collections/set").get_data(as_text=True)
    assert "some images failed" in detail and "set/B/1.jpg" in detail
    assert "/mirador?manifest=" in detail and "collections/set/A/manifest.json" in detail
    assert client.get("/collections/nope").status_code == 404
    assert client.get("/mirador?manifest=javascript:alert(1)").status_code == 400
    viewer = client.get("/mirador", query_string={"manifest": f"{cloud.url}/tiler-tiles/x/manifest.json"})
    assert viewer.status_code == 200 and "vendor/mirador/mirador.min.js" in viewer.get_data(as_text=True)


def _name_versions(cloud, image_id, iiif, presentation):
    """The versions an image was published in, in its record, as app/jobs.py writes them from the Conversion."""
    record = cloud.record(image_id)
    record.setdefault("iiif_versions", iiif)
    record.setdefault("presentation_versions", presentation)
    cloud.s3.put_object(Bucket=cloud.settings.metadata_bucket, Key=f"jobs/{image_id}.json", Body=json.dumps(record))


def test_image_page_offers_both_iiif_versions_where_both_were_published(cloud, client, monkeypatch):
    monkeypatch.setenv("IIIF_VERSIONS", "2,3")
    monkeypatch.setenv("IIIF_PRESENTATION_VERSIONS", "2,3")
    _convert(cloud, "both.jpg")
    _name_versions(cloud, "both", [3, 2], [3, 2])
    tiles = f"{cloud.url}/tiler-tiles"
    page = client.get("/images/both").get_data(as_text=True)
    assert f'data-iiif="{tiles}/both/info.json"' in page and f'data-iiif2="{tiles}/iiif/2/both/info.json"' in page
    assert 'data-source="iiif2"' in page and "IIIF Image API 2.1" in page
    assert "http://localhost/iiif/2/both/info.json" in page  # the dynamic 2.1 service beside the 3.0 one
    assert f"{tiles}/iiif/2/both/manifest.json" in page
    for url in (f"{tiles}/iiif/2/both/info.json", f"{tiles}/iiif/2/both/manifest.json"):
        assert url.removeprefix(f"{tiles}/") in cloud.tiles("iiif/2/")
    urls = client.get("/api/images/both").get_json()["urls"]
    assert {"info", "info2", "manifest", "manifest2"} <= set(urls)


def test_an_image_published_only_in_2_1_shows_its_2_1_thumbnail_and_service(cloud, client, monkeypatch):
    monkeypatch.setenv("IIIF_VERSIONS", "2")
    _convert(cloud, "old-school.jpg")
    _name_versions(cloud, "old-school", [2], [3])
    urls = client.get("/api/images/old-school").get_json()["urls"]
    assert "info" not in urls and urls["info2"].endswith("/iiif/2/old-school/info.json")
    assert urls["thumbnail"].startswith(f"{cloud.url}/tiler-tiles/iiif/2/old-school/full/")
    assert urls["thumbnail"].removeprefix(f"{cloud.url}/tiler-tiles/") in cloud.tiles("iiif/2/")
    page = client.get("/images/old-school").get_data(as_text=True)
    assert 'data-source="iiif"' not in page and 'data-source="iiif2"' in page


def test_a_record_from_before_iiif_versions_is_3_0_only(cloud, client):
    _convert(cloud, "plain3.jpg")
    urls = client.get("/api/images/plain3").get_json()["urls"]
    assert "info" in urls and "info2" not in urls and "manifest2" not in urls


def test_an_items_thumbnails_take_their_2_1_names_where_only_2_1_was_published():
    from app.web.presenting import present

    settings = Settings.from_env({"PUBLIC_BASE_URL": "http://t.example"})
    pages = [{"id": "scan/p0001", "status": "done", "thumbnail": "full/300,200/0/default.jpg"}]
    item = {"id": "scan", "kind": "item", "manifest": True, "pages": pages, "iiif_versions": [2]}
    presented = present({**item, "thumbnail": "p0001/full/300,200/0/default.jpg"}, settings)
    assert presented["urls"]["thumbnail"] == "http://t.example/iiif/2/scan/p0001/full/300,/0/default.jpg"
    assert presented["page_thumbnails"] == {"scan/p0001": "http://t.example/iiif/2/scan/p0001/full/300,/0/default.jpg"}
    both = present({**item, "iiif_versions": [3, 2], "thumbnail": "p0001/full/300,200/0/default.jpg"}, settings)
    assert both["urls"]["thumbnail"] == "http://t.example/scan/p0001/full/300,200/0/default.jpg"
