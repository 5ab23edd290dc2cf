"""Withdrawing an image on the dashboard, and what its pages say about withdrawn, replaced and refused images."""

from __future__ import annotations

import re

from app import records
from app.events import handle_s3_event
from app.ids import distinct_id
from app.model import SourceRef
from app.records import Journal
from app.storage.s3 import S3Storage
from app.web import create_app
from config import Settings
from tests.helpers import journals_settled, photo, sign_in


def _convert(cloud, key, body=None):
    cloud.upload(key, body if body is not None else photo(600, 400))
    return [handle_s3_event(event) for event in cloud.events()]


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_a_signed_in_user_withdraws_an_image_after_a_confirmation_step_and_the_source_stays(cloud, client):
    _convert(cloud, "maps/sheet.jpg")
    assert cloud.tiles("maps/sheet")
    csrf = sign_in(client)
    page = client.get("/images/maps/sheet").get_data(as_text=True)
    assert 'href="/withdraw/maps/sheet"' in page  # a link to the confirmation, not a one-click form

    confirm = client.get("/withdraw/maps/sheet")
    text = _text(confirm.get_data(as_text=True))
    published = len(cloud.tiles("maps/sheet")) + len(cloud.tiles("derivatives/maps/sheet"))  # + the serving TIFF
    assert confirm.status_code == 200
    assert f"its {published} published objects in the tiles bucket" in text, text
    assert "s3://tiler-source/maps/sheet.jpg stays in the source bucket" in text
    assert cloud.tiles("maps/sheet") and cloud.record("maps/sheet")["status"] == "done"  # the GET changed nothing

    refused = client.post("/withdraw/maps/sheet", data={"reason": "no token"})
    assert refused.status_code == 400 and cloud.record("maps/sheet")["status"] == "done"

    answer = client.post("/withdraw/maps/sheet", data={"csrf": csrf, "reason": "rights holder's request"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/images/maps/sheet")
    record = cloud.record("maps/sheet")
    assert record["status"] == "withdrawn" and record["published"] is None
    assert record["withdrawn"]["by"] == "dashboard" and record["withdrawn"]["reason"] == "rights holder's request"
    assert cloud.tiles("maps/sheet") == set()
    assert cloud.keys(cloud.settings.metadata_bucket, "maps/sheet.json") == set()
    assert cloud.keys(cloud.settings.source_bucket) == {"maps/sheet.jpg"}  # the source is kept

    shown = client.get("/images/maps/sheet").get_data(as_text=True)
    assert 'id="viewer"' not in shown and "Withdraw…" not in shown and "Deleted with the withdrawal" in shown
    assert "Withdrawn: maps/sheet is no longer published" in shown  # the flash
    assert re.search(r"Taken down \d{4}-\d\d-\d\d \d\d:\d\d UTC by <strong>dashboard</strong>: rights", shown)
    listed = client.get("/?status=withdrawn").get_data(as_text=True)
    assert 'class="badge withdrawn"' in listed and "by dashboard, just now: rights holder" in listed
    assert "maps/sheet" in client.get("/").get_data(as_text=True)


def test_the_withdrawal_names_who_the_identity_provider_signed_in(cloud, client):
    _convert(cloud, "a.jpg")
    csrf = sign_in(client)
    client.post("/withdraw/a", data={"csrf": csrf, "reason": "sensitive"}, environ_base={"REMOTE_USER": "j.archivist"})
    assert cloud.record("a")["withdrawn"]["by"] == "j.archivist"


def test_only_a_signed_in_user_can_withdraw(cloud, client, monkeypatch):
    _convert(cloud, "a.jpg")
    assert client.get("/withdraw/a").status_code == 401
    assert client.post("/withdraw/a", data={"reason": "x"}).status_code == 401
    assert "Withdraw…" not in client.get("/images/a").get_data(as_text=True)
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    read_only = create_app(Settings.from_env()).test_client()
    assert read_only.get("/withdraw/a").status_code == 403
    assert read_only.post("/withdraw/a", data={"reason": "x"}).status_code == 403
    assert cloud.record("a")["status"] == "done" and cloud.tiles("a")


def test_an_image_being_converted_answers_409_and_nothing_is_withdrawn(cloud, client):
    _convert(cloud, "a.jpg")
    before = cloud.tiles("a")
    cloud.upload("a.jpg", photo(500, 300))  # a new version, whose job is running
    cloud.events()
    store = S3Storage(cloud.settings.upload_workers)
    ref = store.head(SourceRef(cloud.settings.source_bucket, "a.jpg"))
    published = cloud.record("a")["published"]
    assert records.claim(store, cloud.settings.metadata_bucket, "a", ref, "worker", 120) == records.Claim.OURS
    Journal(store, cloud.settings.metadata_bucket, "a", ref, "lambda", "worker", published=published).phase("convert")
    journals_settled()
    csrf = sign_in(client)

    answer = client.post("/withdraw/a", data={"csrf": csrf, "reason": "rights"})

    assert answer.status_code == 409
    assert "a is being converted" in answer.get_data(as_text=True) and "Nothing was withdrawn" in answer.get_data(
        as_text=True
    )
    assert cloud.record("a")["status"] == "running" and cloud.tiles("a") == before


def test_a_failed_new_version_shows_the_published_one_with_a_notice(cloud, client):
    _convert(cloud, "a.jpg")
    first = cloud.record("a")["published"]
    _convert(cloud, "a.jpg", b"this upload is not an image")
    record = cloud.record("a")
    assert record["status"] == "failed" and record["published"]["etag"] == first["etag"]

    page = client.get("/images/a").get_data(as_text=True)

    assert 'id="viewer"' in page  # the version still published is shown
    stamp = first["at"][:16].replace("T", " ")
    assert f"Showing the version of {stamp} UTC; the newest upload failed: " in _text(page)
    assert record["error"] in page
    listed = client.get("/").get_data(as_text=True)
    assert f"still showing the version of {stamp} UTC" in listed
    assert f"/a/{first['thumbnail']}" in listed


def test_a_converting_new_version_shows_the_published_one_with_a_notice(cloud, client):
    _convert(cloud, "a.jpg")
    published = cloud.record("a")["published"]
    cloud.upload("a.jpg", photo(500, 300))
    cloud.events()
    store = S3Storage(cloud.settings.upload_workers)
    ref = store.head(SourceRef(cloud.settings.source_bucket, "a.jpg"))
    Journal(store, cloud.settings.metadata_bucket, "a", ref, "lambda", "w", published=published).phase("convert", 3, 9)
    journals_settled()

    page = client.get("/images/a").get_data(as_text=True)

    assert 'id="viewer"' in page
    assert "; the newest upload is converting (convert 3/9)." in _text(page)


def test_a_refused_twin_names_the_key_that_holds_the_id(cloud, client):
    sign_in(client)
    _convert(cloud, "x.jpg")
    _convert(cloud, "x.png", photo(300, 200).write_to_buffer(".png"))
    twin = distinct_id("x.png")
    assert cloud.record(twin)["conflict"] == "x.jpg"

    page = client.get(f"/images/{twin}").get_data(as_text=True)

    assert "The id is held by <code>x.jpg</code>" in page and 'href="/images/x"' in page
    assert 'id="viewer"' not in page and "Withdraw…" not in page  # nothing of it is published to withdraw


def test_a_withdrawn_image_is_published_again_only_by_a_changed_upload(cloud, client):
    """What the withdrawn page promises: the same file again changes nothing, a changed one is published."""
    original = photo(600, 400).write_to_buffer(".jpg")
    _convert(cloud, "a.jpg", original)
    csrf = sign_in(client)
    client.post("/withdraw/a", data={"csrf": csrf, "reason": "rights"})

    assert _convert(cloud, "a.jpg", original) == [{"handled": 1, "ignored": 0, "statuses": ["duplicate"]}]
    assert cloud.record("a")["status"] == "withdrawn" and cloud.tiles("a") == set()

    _convert(cloud, "a.jpg", photo(500, 300))
    assert cloud.record("a")["status"] == "done" and "a.dzi" in cloud.tiles("a")


def test_a_withdrawn_image_whose_source_was_kept_is_published_again_on_request(cloud, client):
    _convert(cloud, "a.jpg")
    published = cloud.tiles("a")
    csrf = sign_in(client)
    client.post("/withdraw/a", data={"csrf": csrf, "reason": "rights check"})
    assert cloud.tiles("a") == set() and "Publish again" in client.get("/images/a").get_data(as_text=True)

    assert client.post("/images/a/retry", data={"csrf": csrf}).status_code == 302
    assert [handle_s3_event(event)["statuses"] for event in cloud.events()] == [["done"]]
    assert cloud.record("a")["status"] == "done" and cloud.tiles("a") == published


def test_an_image_named_withdraw_keeps_its_page(cloud, client):
    _convert(cloud, "letters/withdraw.jpg")
    page = client.get("/images/letters/withdraw")
    assert page.status_code == 200 and 'id="viewer"' in page.get_data(as_text=True)
