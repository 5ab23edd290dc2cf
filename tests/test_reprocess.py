"""python -m app reprocess STAGE: the estimate first, then every image once more through the normal path.

The stage's settings name the local stack's queue (``EVENT_QUEUE``), so a run's
events travel S3-shaped through SQS to ``events.handle_s3_event``, as issue 22's
deployment receives them; the local stack's pump plays the event source mapping.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from urllib.parse import unquote_plus

import pytest

from app import jobs, reprocess, takedown
from app.__main__ import main
from app.events import RUN_FIELD, handle_s3_event
from app.storage.s3 import S3Storage
from tests.helpers import photo

STAGE = "archive"


@pytest.fixture
def stage_file(cloud, tmp_path):
    """A Zappa settings file whose stage names the test's buckets and the local event queue."""
    settings = cloud.settings
    path = tmp_path / "zappa_settings.json"
    environment = {
        "SOURCE_BUCKET": settings.source_bucket,
        "TILES_BUCKET": settings.tiles_bucket,
        "METADATA_BUCKET": settings.metadata_bucket,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "WORK_DIR": settings.work_dir,
        "EVENT_QUEUE": cloud.stack.queue_url.rsplit("/", 1)[1],  # the queue the local stack's S3 notifies
    }
    stage = {"project_name": "tiler", "aws_region": "us-east-1", "environment_variables": environment}
    path.write_text(json.dumps({STAGE: stage}))
    return path


@pytest.fixture
def converted(cloud):
    """Three images converted through their upload events; returns their ids."""
    for key in ("maps/a.jpg", "maps/b.jpg", "other/c.jpg"):
        cloud.upload(key, photo(300, 200))
    for event in cloud.events():
        assert handle_s3_event(event)["statuses"] == ["done"]
    return ["maps/a", "maps/b", "other/c"]


@pytest.fixture
def sent(monkeypatch):
    """Every event a run delivers, in order (and delivered for real)."""
    events = []
    real = reprocess.delivery

    def recording(*args, **kwargs):
        deliver = real(*args, **kwargs)

        def deliver_and_note(event):
            events.append(event)
            deliver(event)

        return deliver_and_note

    monkeypatch.setattr(reprocess, "delivery", recording)
    monkeypatch.setattr(reprocess, "POLL_SECONDS", 0.05)
    return events


@pytest.fixture
def conversions(monkeypatch):
    """How often each image id was converted (the pipeline's function, as the engine calls it)."""
    counted = Counter()
    real = jobs.convert

    def counting(source, out, settings, image_id, **options):
        counted[image_id] += 1
        return real(source, out, settings, image_id, **options)

    monkeypatch.setattr(jobs, "convert", counting)
    return counted


@contextlib.contextmanager
def pumping(cloud):
    """The local event source mapping, handing queued events to the handler while a run waits for them; a
    delivery that failed (the image was busy) comes back after a second."""
    cloud.sqs.set_queue_attributes(QueueUrl=cloud.stack.queue_url, Attributes={"VisibilityTimeout": "1"})
    cloud.stack.start()
    try:
        yield
    finally:
        cloud.stack.stop()


def reprocess_cli(stage_file, *args):
    return main(["reprocess", STAGE, "--settings-file", str(stage_file), *args])


def keys_of(events):
    return [unquote_plus(record["s3"]["object"]["key"]) for event in events for record in event["Records"]]


def test_a_dry_run_prints_the_count_and_estimate_and_sends_nothing(cloud, stage_file, converted, capsys):
    assert reprocess_cli(stage_file, "--prefix", "maps/", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 images to re-process (stage archive, prefix maps/, status any): 2 done" in out
    assert "Estimated cost: $" in out and "from 2 earlier conversions" in out
    assert "Estimated time: about" in out
    assert "would send s3://tiler-source/maps/a.jpg (done)" in out and "other/c.jpg" not in out
    assert "Dry run: nothing was sent." in out
    assert cloud.events() == []
    assert cloud.keys(cloud.settings.metadata_bucket, "reprocess/") == set()


def test_it_asks_first_and_without_a_terminal_or_yes_it_refuses_and_sends_nothing(cloud, stage_file, converted, capsys):
    assert reprocess_cli(stage_file) == 1  # pytest's stdin is not a terminal
    assert "refusing to start without confirmation: stdin is not a terminal; pass --yes" in capsys.readouterr().err

    asked = []
    store = S3Storage(cloud.settings.upload_workers)
    answer = reprocess.command(
        store, cloud.settings, STAGE, connect=None, interactive=True, confirm=lambda q: asked.append(q) or "n"
    )
    assert answer == 1 and asked == ["Start? [y/N] "] and "Not started." in capsys.readouterr().out
    assert cloud.events() == [] and cloud.keys(cloud.settings.metadata_bucket, "reprocess/") == set()


def test_a_run_converts_each_image_once_even_when_every_event_arrives_twice(
    cloud, stage_file, converted, sent, conversions, monkeypatch, capsys
):
    real = reprocess.Run._send

    def twice(run, candidate):  # S3 and SQS deliver at least once: a run must shrug off its own duplicates
        run.deliver(reprocess.s3_event(cloud.settings.source_bucket, candidate.key, candidate.etag, None, run.run_id))
        real(run, candidate)

    monkeypatch.setattr(reprocess.Run, "_send", twice)
    before = {image_id: cloud.record(image_id) for image_id in converted}

    with pumping(cloud):
        assert reprocess_cli(stage_file, "--yes") == 0

    out = capsys.readouterr().out
    run = out.split("Run ", 1)[1].split(":", 1)[0]
    assert f"Run {run} finished: 3 sent; 3 done; 0 converting" in out
    assert conversions == {"maps/a": 1, "maps/b": 1, "other/c": 1}  # six deliveries, three conversions
    assert Counter(keys_of(sent)) == {"maps/a.jpg": 2, "maps/b.jpg": 2, "other/c.jpg": 2}
    for image_id in converted:
        record = cloud.record(image_id)
        assert record["status"] == "done" and record["run"] == run
        assert record["created_at"] > before[image_id]["created_at"]  # a new job, not the old record
        assert record["source"]["etag"] == before[image_id]["source"]["etag"]  # the same, unchanged version
    state = json.loads(cloud.read(cloud.settings.metadata_bucket, f"reprocess/{run}.json"))
    assert state["finished"] and state["settled"] == {"done": 3} and state["pending"] == []
    assert all(record[RUN_FIELD] == run for event in sent for record in event["Records"])


def test_status_failed_sends_only_the_failed_images(cloud, stage_file, converted, sent, conversions, capsys):
    cloud.upload("maps/broken.jpg", b"this is not a JPEG")
    (event,) = cloud.events()
    assert handle_s3_event(event)["statuses"] == ["failed"]

    with pumping(cloud):
        assert reprocess_cli(stage_file, "--status", "failed", "--yes") == 0

    assert keys_of(sent) == ["maps/broken.jpg"]
    run = sent[0]["Records"][0][RUN_FIELD]
    assert cloud.record("maps/broken")["status"] == "failed" and cloud.record("maps/broken")["run"] == run
    assert cloud.record("maps/a")["run"] is None and conversions == Counter()  # the done ones were not touched
    assert "not sent: 3 not failed" in capsys.readouterr().out


def test_withdrawn_images_are_never_sent(cloud, stage_file, converted, capsys):
    takedown.withdraw(cloud.settings, "maps/b", "registrar", "rights request", "test")
    assert reprocess_cli(stage_file, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 images to re-process" in out and "not sent: 1 withdrawn" in out and "maps/b.jpg" not in out


def test_a_stopped_run_resumed_sends_only_what_is_left(cloud, stage_file, sent, conversions, monkeypatch, capsys):
    keys = [f"batch/{n}.jpg" for n in range(3)]
    for key in keys:
        cloud.upload(key, photo(300, 200))
    for event in cloud.events():
        handle_s3_event(event)
    conversions.clear()
    real = reprocess.Run._send

    def stopped_at_the_second(run, candidate):
        if run.state["sent"] == 1:
            raise KeyboardInterrupt  # Ctrl-C
        real(run, candidate)

    monkeypatch.setattr(reprocess.Run, "_send", stopped_at_the_second)
    assert reprocess_cli(stage_file, "--yes") == 130
    out = capsys.readouterr().out
    run = out.split("Run ", 1)[1].split(":", 1)[0]
    assert f"Resume with: python -m app reprocess {STAGE} --resume {run}" in out
    assert keys_of(sent) == keys[:1]
    state = json.loads(cloud.read(cloud.settings.metadata_bucket, f"reprocess/{run}.json"))
    assert state["cursor"] == keys[0] and state["sent"] == 1 and len(state["pending"]) == 1
    for event in cloud.events():  # the one sent before the stop is converted meanwhile
        assert handle_s3_event(event)["statuses"] == ["done"]

    monkeypatch.setattr(reprocess.Run, "_send", real)
    sent.clear()
    with pumping(cloud):
        assert reprocess_cli(stage_file, "--resume", run, "--yes") == 0

    out = capsys.readouterr().out
    assert "2 images to re-process" in out and "1 sent before, 1 still converting" in out
    assert keys_of(sent) == keys[1:]  # only what was left
    assert all(record[RUN_FIELD] == run for event in sent for record in event["Records"])
    assert {cloud.record(f"batch/{n}")["run"] for n in range(3)} == {run}
    assert conversions == {f"batch/{n}": 1 for n in range(3)}
    assert f"Run {run} finished: 3 sent; 3 done; 0 converting" in out
    assert reprocess_cli(stage_file, "--resume", run) == 0  # a finished run says so and does nothing
    assert "finished already" in capsys.readouterr().out


def test_without_a_queue_the_function_is_invoked_asynchronously_with_an_event_zappa_routes(monkeypatch):
    """No EVENT_QUEUE: Lambda Invoke with InvocationType Event, as S3 invokes it; Zappa's handler must find the
    function for the record from the record alone (its configurationId), since the run's bucket ARN is only in
    AWS_EVENT_MAPPING while Zappa wires the bucket itself."""
    import boto3
    from botocore.stub import Stubber
    from zappa.handler import LambdaHandler

    client = boto3.client("lambda", region_name="eu-west-1")
    event = reprocess.s3_event("archive-source", "maps/sheet 12.tif", "0123abcd", 1234, "20261130T120000Z-abcdef")
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": "tiler-archive", "InvocationType": "Event", "Payload": json.dumps(event).encode()},
        )
        monkeypatch.setattr(boto3, "client", lambda service, region_name=None: client)
        reprocess.delivery("eu-west-1", "tiler-archive")(event)
        stub.assert_no_pending_responses()

    handler = LambdaHandler.__new__(LambdaHandler)
    handler.settings = type("ZappaSettings", (), {"AWS_EVENT_MAPPING": {}})()
    assert handler.get_function_for_aws_event(event["Records"][0]) == ["app.events.handle_s3_event"]
    assert event["Records"][0]["s3"]["object"]["key"] == "maps/sheet+12.tif"  # URL-encoded, as S3 sends it


def test_a_document_is_re_run_page_by_page(cloud, stage_file, sent, conversions, tmp_path, capsys):
    from tests.pipeline.test_documents import three_page_pdf

    cloud.upload("box/ledger.pdf", three_page_pdf(tmp_path / "ledger.pdf").read_bytes())
    while events := cloud.events():  # the document, then its pages, as S3 delivers them
        for event in events:
            handle_s3_event(event)
    assert cloud.record("box/ledger")["status"] == "done"
    conversions.clear()

    with pumping(cloud):
        assert reprocess_cli(stage_file, "--yes") == 0

    pages = [f"box/ledger/p000{n}" for n in (1, 2, 3)]
    assert [key.split("@")[0] for key in keys_of(sent)] == [f"pages/{page}" for page in pages]
    assert conversions == dict.fromkeys(pages, 1)
    run = sent[0]["Records"][0][RUN_FIELD]
    assert all(cloud.record(page)["run"] == run and cloud.record(page)["status"] == "done" for page in pages)
    assert cloud.record("box/ledger")["status"] == "done" and cloud.tiles("box/ledger/manifest.json")
    assert "not sent: 3 page sources (re-run with their documents)" in capsys.readouterr().out
