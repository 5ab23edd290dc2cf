"""The dashboard's retry of a stalled job: a running or queued job whose record stopped moving is sent again."""

import types

import pytest

from app import records
from app.events import handle_s3_event
from app.model import SourceRef
from app.records import Journal
from app.storage.s3 import S3Storage
from tests.helpers import journals_settled, photo, sign_in


def _died_converting(cloud, monkeypatch, clock, event) -> str:
    """A worker claimed the job and recorded it, as jobs.handle does, then died mid-conversion."""
    settings = cloud.settings
    store = S3Storage(settings.upload_workers)
    ref = store.head(SourceRef(settings.source_bucket, "img.jpg"))
    records.claim(store, settings.metadata_bucket, "img", ref, "dead", settings.stale_after_seconds)
    journal = Journal(store, settings.metadata_bucket, "img", ref, "lambda", "dead", clock=clock.monotonic)
    journal.phase("convert", 0, 100)
    journals_settled()
    return "running"


def _queued_but_never_run(cloud, monkeypatch, clock, event) -> str:
    """Handed to AWS Batch for lack of Lambda time; the Batch job never ran."""
    queue, definition = cloud.enable_batch()
    monkeypatch.setenv("BATCH_JOB_QUEUE", queue)
    monkeypatch.setenv("BATCH_JOB_DEFINITION", definition)
    hurried = types.SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 8000)
    assert handle_s3_event(event, hurried)["statuses"] == ["queued"]
    return "queued"


@pytest.mark.parametrize("stall", [_died_converting, _queued_but_never_run])
def test_a_stalled_job_is_retried_from_the_dashboard_and_completes_but_a_live_one_is_not(
    cloud, client, monkeypatch, clock, stall
):
    cloud.upload("img.jpg", photo(600, 400))
    (event,) = cloud.events()
    status = stall(cloud, monkeypatch, clock, event)
    assert cloud.record("img")["status"] == status
    csrf = sign_in(client)

    clock.advance(cloud.settings.stale_after_seconds - 1)  # quiet, but not for long enough: it may still be alive
    page = client.post("/images/img/retry", data={"csrf": csrf}, follow_redirects=True).get_data(as_text=True)
    assert f"Cannot retry: the job is {status}" in page
    assert cloud.events() == []

    clock.advance(2)  # quiet for longer than STALE_AFTER_SECONDS: stalled
    page = client.post("/images/img/retry", data={"csrf": csrf}, follow_redirects=True).get_data(as_text=True)
    assert "Retry requested" in page
    (again,) = cloud.events()
    assert handle_s3_event(again)["statuses"] == ["done"]
    assert cloud.record("img")["status"] == "done" and cloud.tiles("img/")
