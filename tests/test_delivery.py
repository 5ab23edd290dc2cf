"""Durable delivery on the S3 endpoint over HTTP: S3 -> SQS -> the local event source mapping -> the handler.

The mapping behaves as Lambda's does (batches, visibility timeout, partial batch
failures); SQS itself sets a message aside in the dead-letter queue after
MAX_RECEIVES deliveries.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app import events, jobs, queue, records, sweep
from app.errors import TransientError
from app.storage.s3 import S3Storage
from tests.helpers import photo

REPO = Path(__file__).resolve().parents[1]


def _until(condition, timeout: float = 120, what: str = "the condition"):
    """Poll ``condition`` until it returns something true (what the jobs write is read back from S3)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what} after {timeout}s")


def _status(cloud, image_id: str) -> str | None:
    record = cloud.record(image_id)
    return record and record["status"]


def _depth(cloud, queue_url: str) -> int:
    attributes = cloud.sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


class Invocations:
    """Wraps the handler the local mapping invokes: remembers the keys of every batch, as the function saw them."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, event, context):
        keys = [
            key for record in event["Records"] if "Records" in record["body"] for key in queue._keys(record["body"])
        ]
        with self._lock:
            self.batches.append(keys) if keys else None  # S3's test event, sent when the notification was set
        return events.handle_s3_event(event, context)

    def count(self, key: str) -> int:
        return sum(batch.count(key) for batch in self.batches)


@pytest.fixture
def poisoned(monkeypatch):
    """Fetching any source whose key starts with ``poison`` fails with a transient error, until cured."""
    real_fetch, poisoned = S3Storage.fetch, {"on": True}

    def fetch(self, ref, *args, **kwargs):
        if poisoned["on"] and ref.key.startswith("poison"):
            raise TransientError("S3 is unreachable for this one (injected)")
        return real_fetch(self, ref, *args, **kwargs)

    monkeypatch.setattr(S3Storage, "fetch", fetch)
    return poisoned


def test_an_upload_flows_through_the_queue_to_done_and_leaves_no_message(cloud):
    invocations = Invocations()
    cloud.stack.mapping.handler = invocations
    cloud.upload("harbour at dawn.jpg", photo(700, 500))
    cloud.stack.start()
    try:
        _until(lambda: _status(cloud, "harbour_at_dawn") == "done", what="the upload to be converted")
        _until(lambda: _depth(cloud, cloud.stack.queue_url) == 0, what="the message to be deleted")
    finally:
        cloud.stack.stop()
    assert invocations.batches == [["harbour at dawn.jpg"]]
    assert _depth(cloud, cloud.stack.dead_letter_queue_url) == 0
    assert "harbour_at_dawn/info.json" in cloud.tiles("harbour_at_dawn/")


def test_a_poison_message_goes_to_the_dead_letters_while_its_neighbours_complete_then_a_redrive_finishes_it(
    cloud, poisoned
):
    invocations = Invocations()
    cloud.stack.mapping.handler, cloud.stack.mapping.batch_size = invocations, 3
    assert cloud.events() == []  # S3's test event, sent when the notification was set, is out of the way
    for key in ("before.jpg", "poison.jpg", "after.jpg"):
        cloud.upload(key, photo(600, 400))
    cloud.stack.start()
    try:
        _until(lambda: _depth(cloud, cloud.stack.dead_letter_queue_url) == 1, what="the dead letter")
        letters, total = queue.dead_letters(cloud.settings.dead_letter_queue, cloud.settings.max_receives)
        assert _status(cloud, "before") == _status(cloud, "after") == "done"
        assert _status(cloud, "poison") == "retrying"
        assert sorted(invocations.batches[0]) == ["after.jpg", "before.jpg", "poison.jpg"]  # one batch of three
        assert invocations.count("before.jpg") == invocations.count("after.jpg") == 1  # never run again
        assert invocations.count("poison.jpg") == cloud.settings.max_receives
        assert total == 1 and letters[0].keys == ("poison.jpg",) and letters[0].attempts == cloud.settings.max_receives
        assert letters[0].first_failure and letters[0].redrives == 0

        poisoned["on"] = False  # the fault is gone
        (sent,) = queue.redrive(
            cloud.settings.dead_letter_queue, cloud.settings.event_queue, cloud.settings.max_receives
        )
        assert sent.keys == ("poison.jpg",)
        _until(lambda: _status(cloud, "poison") == "done", what="the re-driven message")
    finally:
        cloud.stack.stop()
    assert _depth(cloud, cloud.stack.dead_letter_queue_url) == 0
    assert invocations.count("before.jpg") == invocations.count("after.jpg") == 1


def test_a_redriven_letter_that_fails_again_keeps_its_first_failure_and_counts_every_attempt(cloud, poisoned):
    cloud.upload("poison.jpg", photo(300, 200))
    cloud.stack.start()
    try:
        _until(lambda: _depth(cloud, cloud.stack.dead_letter_queue_url) == 1, what="the dead letter")
        (first,), _ = queue.dead_letters(cloud.settings.dead_letter_queue, cloud.settings.max_receives)
        queue.redrive(cloud.settings.dead_letter_queue, cloud.settings.event_queue, cloud.settings.max_receives)
        _until(
            lambda: queue.dead_letters(cloud.settings.dead_letter_queue, cloud.settings.max_receives)[0],
            what="the letter to fail again",
        )
    finally:
        cloud.stack.stop()
    (again,), _ = queue.dead_letters(cloud.settings.dead_letter_queue, cloud.settings.max_receives)
    assert again.first_failure == first.first_failure
    assert again.redrives == 1 and again.attempts == 2 * cloud.settings.max_receives


def test_a_message_the_handler_cannot_read_is_reported_failed_and_a_test_event_in_a_body_is_not(cloud):
    cloud.stack.mapping.batch_size = 3
    assert cloud.events() == []
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": cloud.settings.source_bucket}
    for body in ("not json", json.dumps(test_event), json.dumps({"Records": "nope"})):
        cloud.sqs.send_message(QueueUrl=cloud.stack.queue_url, MessageBody=body)
    batch = _until(lambda: cloud.stack.mapping.receive(), what="the messages")
    answer = events.handle_s3_event({"Records": batch})
    by_id = {record["messageId"]: record["body"] for record in batch}
    assert sorted(by_id[item["itemIdentifier"]] for item in answer["batchItemFailures"]) == sorted(
        ["not json", json.dumps({"Records": "nope"})]
    )


def test_the_function_reports_metrics_in_embedded_metric_format(cloud, capsys):
    class Context:
        aws_request_id = "req-metrics"
        memory_limit_in_mb = 3008

        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    assert cloud.events() == []
    cloud.upload("good.jpg", photo(1000, 800))
    cloud.upload("bad.jpg", b"not an image")
    cloud.stack.mapping.batch_size = 2
    batch = _until(lambda: cloud.stack.mapping.receive(), what="the messages")
    assert len(batch) == 2
    assert events.handle_s3_event({"Records": batch}, Context()) == {"batchItemFailures": []}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    done = next(line for line in lines if "Done" in line)
    failed = next(line for line in lines if "Failed" in line)
    record = cloud.record("good")
    assert done["SecondsPerMegapixel"] == pytest.approx(record["timings"]["total"] / 0.8, rel=0.01)
    assert failed["Failed"] == 1 and failed["image"] == "bad"
    for line in (done, failed):
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Tiler" and directive["Dimensions"] == [["SourceBucket"]]
        assert line["SourceBucket"] == cloud.settings.source_bucket
        assert {m["Name"] for m in directive["Metrics"]} <= set(line)  # every metric named has its value


def test_a_duplicate_delivery_of_a_finished_job_counts_no_second_conversion(cloud, capsys):
    class Context:
        aws_request_id = "req-a"

    cloud.upload("once.jpg", photo(400, 300))
    (event,) = cloud.events()
    events.handle_s3_event(event, Context())
    Context.aws_request_id = "req-b"
    events.handle_s3_event(event, Context())
    assert capsys.readouterr().out.count('"Done": 1') == 1


WORKER = """
import sys
from app import events
from app.storage.publishing import Publisher
from config import Settings
from tooling.local_stack import LocalStack

def paused(*args, **kwargs):  # mid-job: tiles of the early kind are up, nothing else; wait to be killed
    print("publishing", flush=True)
    sys.stdin.read()

Publisher.publish = paused
stack = LocalStack(Settings.from_env())
stack.attach()
batch = []
while not batch:  # the killed invocation holds its message long: only the sweep can bring the job back here
    batch = [r for r in stack.mapping.receive(visibility_timeout=600) if "Records" in r["body"]]
events.handle_s3_event({"Records": batch}, None)
"""


def test_a_worker_killed_mid_job_is_redriven_by_the_sweep_and_ends_done_with_every_object(cloud, clock):
    image = photo(1400, 1000)
    cloud.upload("killed.jpg", image)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert worker.stdout.readline().strip() == "publishing"
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # not an exception: the process is gone, mid-job
        worker.wait()
    stuck = cloud.record("killed")
    assert stuck["status"] == "running" and stuck["progress"]["phase"] in ("convert", "publish")
    assert sweep.run() == {"redriven": [], "failed": []}  # not stuck yet: it may still be moving

    # the worker wrote in real time, ahead of the test's clock: age its record past the limit from there
    clock.advance(sweep.stuck_after_seconds(cloud.settings) + 1 - records.age_seconds(stuck["updated_at"]))
    assert sweep.run() == {"redriven": ["killed"], "failed": []}
    cloud.stack.start()
    try:
        _until(lambda: _status(cloud, "killed") == "done", what="the re-driven job")
    finally:
        cloud.stack.stop()
    cloud.upload("fresh.jpg", image)  # the same image converted with nothing in the way, for comparison
    (event,) = cloud.events()
    events.handle_s3_event(event)
    published = {key.replace("killed", "ID", 1) for key in cloud.tiles("killed")}
    assert published == {key.replace("fresh", "ID", 1) for key in cloud.tiles("fresh")}
    assert {"ID/info.json", "ID.dzi", "ID/full/max/0/default.jpg", "ID/manifest.json"} <= published


def test_a_job_that_stays_stuck_is_redriven_a_bounded_number_of_times_then_failed(cloud, clock, poisoned):
    cloud.upload("poison-stuck.jpg", photo(300, 200))
    (event,) = cloud.events()
    with pytest.raises(TransientError):
        events.handle_s3_event(event)
    assert _status(cloud, "poison-stuck") == "retrying"
    for _ in range(cloud.settings.max_redrives):
        clock.advance(sweep.stuck_after_seconds(cloud.settings) + 1)
        assert sweep.run() == {"redriven": ["poison-stuck"], "failed": []}
        (redriven,) = cloud.events()  # the source's current version, through the normal path
        assert redriven["Records"][0]["s3"]["object"]["key"] == "poison-stuck.jpg"
        with pytest.raises(TransientError):
            events.handle_s3_event(redriven)
    clock.advance(sweep.stuck_after_seconds(cloud.settings) + 1)
    assert sweep.run() == {"redriven": [], "failed": ["poison-stuck"]}
    record = cloud.record("poison-stuck")
    assert record["status"] == "failed"
    assert f"re-driven {cloud.settings.max_redrives} times" in record["error"] and "injected" in record["error"]
    assert "index/failed/poison-stuck" in cloud.keys(cloud.settings.metadata_bucket, "index/")
    assert not cloud.keys(cloud.settings.metadata_bucket, "index/retrying/")


def test_a_burst_of_a_thousand_uploads_is_all_accounted_for(cloud, monkeypatch):
    """Every upload ends done or failed, none lost, none converted twice, through S3 notifications, the queue, the
    mapping's batches and the handler's claims and records. The conversion itself is a stand-in that records the
    outcome (a real burst of 100 converts in tests/test_jobs.py): here 1,000 uploads must stay quick."""
    conversions: dict[str, int] = {}
    lock = threading.Lock()

    def convert_stand_in(journal, store, ref, image_id, *_):
        with lock:
            conversions[image_id] = conversions.get(image_id, 0) + 1
        if int(ref.key[6:10]) % 50 == 49:  # the broken uploads below
            return journal.save(status="failed", error="not an image (stand-in)")
        return journal.save(status="done", error=None, progress={"phase": "done", "done": 1, "total": 1})

    monkeypatch.setattr(jobs, "_run", convert_stand_in)
    finals, all_final = set(), threading.Event()

    def count_final(record, _settings, _key):  # in-process: polling S3 for 1,000 records would slow the burst
        with lock:
            finals.add(record["id"])
            if len(finals) == 1000:
                all_final.set()

    monkeypatch.setattr(events, "SUBSCRIBERS", (*events.SUBSCRIBERS, count_final))
    cloud.stack.mapping.batch_size, cloud.stack.mapping.concurrency = 10, 4
    assert cloud.events() == []
    expected = {}
    started = time.monotonic()
    cloud.stack.start()
    try:
        for number in range(1000):
            broken = number % 50 == 49
            cloud.upload(f"burst/{number:04}.jpg", b"broken %d" % number if broken else b"image %d" % number)
            expected[f"burst/{number:04}"] = "failed" if broken else "done"
        uploaded = time.monotonic()
        assert all_final.wait(timeout=240), f"only {len(finals)} of 1,000 final"
        finished = time.monotonic()
        _until(lambda: _depth(cloud, cloud.stack.queue_url) == 0, what="the queue to drain")
    finally:
        cloud.stack.stop()
    statuses = {key.split("/", 2)[2]: key.split("/")[1] for key in cloud.keys(cloud.settings.metadata_bucket, "index/")}
    assert statuses == expected
    assert conversions == dict.fromkeys(expected, 1)  # each converted once
    assert _depth(cloud, cloud.stack.dead_letter_queue_url) == 0
    print(
        f"\n1,000 uploads in {uploaded - started:.1f}s; all final {finished - started:.1f}s after the first: "
        f"{1000 / (finished - started):.0f} uploads/s through {cloud.stack.mapping.invocations} invocations"
    )


def test_the_redrive_command_lists_the_dead_letters_then_sends_them_back(
    cloud, poisoned, monkeypatch, tmp_path, capsys
):
    from app.__main__ import main

    cloud.upload("poison-cli.jpg", photo(300, 200))
    (event,) = cloud.events()
    with pytest.raises(TransientError):
        events.handle_s3_event(event)
    cloud.sqs.send_message(QueueUrl=cloud.stack.dead_letter_queue_url, MessageBody=json.dumps(event))
    environment = {
        name: os.environ[name]
        for name in ("SOURCE_BUCKET", "TILES_BUCKET", "METADATA_BUCKET", "EVENT_QUEUE", "DEAD_LETTER_QUEUE")
        if name in os.environ
    }
    stage = {"dev": {"aws_region": "us-east-1", "environment_variables": environment}}
    (tmp_path / "zappa_settings.json").write_text(json.dumps(stage))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the command sets the stage's region

    assert main(["redrive", "dev", "--settings-file", str(tmp_path / "zappa_settings.json"), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "poison-cli.jpg" in listed and "[retrying: TransientError: S3 is unreachable" in listed
    assert "1 dead letter(s) in tiler-source-events-dead" in listed and "re-drove" not in listed

    poisoned["on"] = False
    assert main(["redrive", "dev", "--settings-file", str(tmp_path / "zappa_settings.json")]) == 0
    assert "re-drove 1 to tiler-source-events" in capsys.readouterr().out
    (again,) = cloud.events()
    events.handle_s3_event(again)
    assert _status(cloud, "poison-cli") == "done"
