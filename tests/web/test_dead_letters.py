"""The dashboard's dead letters: listed with their key, first failure and attempts; re-driven only signed in,
with the session's CSRF token."""

import json
import re
from urllib.parse import unquote_plus

import pytest

from app.errors import TransientError
from app.events import handle_s3_event
from app.storage.s3 import S3Storage
from tests.helpers import photo, sign_in


def sign_in(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"password": "open sesame", "csrf": csrf}).status_code == 302
    return re.search(r'csrf: "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def _dead_letter(cloud, monkeypatch) -> dict:
    """An upload whose delivery failed (its record says retrying) and whose event SQS then set aside."""
    real_fetch = S3Storage.fetch

    def unreachable(self, ref, *args, **kwargs):
        raise TransientError("S3 is unreachable (injected)")

    cloud.upload("scans/letter 1.jpg", photo(500, 400))
    (event,) = cloud.events()
    monkeypatch.setattr(S3Storage, "fetch", unreachable)
    with pytest.raises(TransientError):
        handle_s3_event(event)
    monkeypatch.setattr(S3Storage, "fetch", real_fetch)
    cloud.sqs.send_message(QueueUrl=cloud.stack.dead_letter_queue_url, MessageBody=json.dumps(event))
    return event


def test_dead_letters_are_listed_with_their_key_first_failure_attempts_and_error(cloud, client, monkeypatch):
    _dead_letter(cloud, monkeypatch)
    page = client.get("/dead-letters").get_data(as_text=True)
    assert "scans/letter 1.jpg" in page and "1 in tiler-source-events-dead" in page
    row = re.search(r'<tr data-message="[^"]+">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert re.match(r"\d{4}-\d\d-\d\dT", cells[1].strip())  # first failure
    assert cells[2].strip() == str(cloud.settings.max_receives)  # attempts
    assert "retrying" in cells[3] and "S3 is unreachable (injected)" in cells[3]
    assert "Re-drive" not in page  # not signed in: no button
    assert client.get("/dead-letters").get_data(as_text=True).count("scans/letter 1.jpg") == 1  # listing keeps it


def test_a_redrive_needs_a_sign_in_and_the_csrf_token_then_the_job_completes(cloud, client, monkeypatch):
    _dead_letter(cloud, monkeypatch)
    assert client.post("/dead-letters/redrive").status_code == 401
    csrf = sign_in(client)
    assert client.post("/dead-letters/redrive", data={"csrf": "forged"}).status_code == 400
    assert (
        cloud.sqs.get_queue_attributes(
            QueueUrl=cloud.stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "1"
    )
    page = client.post("/dead-letters/redrive", data={"csrf": csrf}, follow_redirects=True).get_data(as_text=True)
    assert "Re-drove 1 event(s)" in page and "No dead letters" in page
    (event,) = cloud.events()  # back on the event queue, as it was
    assert unquote_plus(event["Records"][0]["s3"]["object"]["key"]) == "scans/letter 1.jpg"
    handle_s3_event(event)
    assert cloud.record("scans/letter_1")["status"] == "done"
