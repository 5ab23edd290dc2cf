"""Collections at archive scale: a bounded number of S3 requests per image, counted on the endpoint over HTTP, and
a run that resumes after a failure without redoing finished batches."""

from __future__ import annotations

import json
import threading

import pytest

from app import events
from app.collection import plan, runner
from app.events import handle_s3_event
from app.storage.s3 import S3Storage
from tests.helpers import photo

ITEMS, PAGES = 6, 10  # 60 images in batches of 20: three batches


@pytest.fixture
def archive(cloud, monkeypatch):
    monkeypatch.setattr(plan, "BATCH_IMAGES", 20)
    monkeypatch.setenv("SERVING_TIFF", "false")  # the conversions are not what these tests are about
    for item in range(ITEMS):
        for page in range(1, PAGES + 1):
            cloud.upload(f"arch/I{item}/I{item}_{page:03}.png", photo(40 + page, 32), ".png")
    cloud.events()  # the uploads' own events: the task is what sends these images
    return cloud


def _handle_all(cloud, events_now=None) -> int:
    """Deliver every event until none is left, as Lambda would; how many were delivered."""
    delivered = 0
    pending = events_now if events_now is not None else cloud.events()
    while pending:
        for event in pending:
            handle_s3_event(event)
            delivered += 1
        pending = cloud.events()
    return delivered


def _record(cloud, name="arch"):
    return json.loads(cloud.read(cloud.settings.metadata_bucket, f"collections/{name}.json"))


def test_starting_and_completing_cost_a_bounded_number_of_requests_per_image(archive, monkeypatch):
    cloud, images = archive, ITEMS * PAGES
    listening = threading.Event()  # set while a collection listener runs: its requests are the bookkeeping

    def listened(record, settings, key):
        listening.set()
        try:
            runner.image_finished(record, settings, key)
        finally:
            listening.clear()

    monkeypatch.setattr(events, "SUBSCRIBERS", (listened, *events.SUBSCRIBERS[1:]))
    cloud.upload("tasks/arch.json", json.dumps({"collection": "arch", "source_prefix": "arch/"}).encode())
    with cloud.requests() as start:
        (task_event,) = cloud.events()
        handle_s3_event(task_event)
        batch_events = cloud.events()
        for event in batch_events:
            handle_s3_event(event)
    assert len(batch_events) == 3
    assert len(start) / images <= 2, f"{len(start)} requests to start {images} images"
    copies = [path for method, path in start if method == "PUT" and path.startswith("/tiler-source/arch/")]
    assert len(copies) == images  # each image sent once

    with cloud.requests(when=listening.is_set) as bookkeeping:
        _handle_all(cloud)
    document = _record(cloud)
    assert document["status"] == "done" and document["progress"] == {"done": images, "total": images}
    assert len(bookkeeping) / images <= 5, f"{len(bookkeeping)} bookkeeping requests for {images} images"
    collection_writes = [path for method, path in bookkeeping if method == "PUT" and path.endswith("/collection.json")]
    assert len(collection_writes) == 1  # the Collection is assembled once, not rewritten per image

    cloud.upload("tasks/arch.json", json.dumps({"collection": "arch", "source_prefix": "arch/", "label": "A"}).encode())
    with cloud.requests() as rerun:  # a new run (the task changed) over converted images: none is sent again
        _handle_all(cloud)
    document = _record(cloud)
    assert document["status"] == "done" and document["task"]["label"] == "A"
    assert [path for method, path in rerun if method == "PUT" and path.startswith("/tiler-source/arch/")] == []
    record_reads = [path for method, path in rerun if method == "GET" and path.startswith("/tiler-metadata/jobs/")]
    assert len(record_reads) == 2 * images  # once to start, once as its batch completes

    ended = document["run"]
    cloud.upload("tasks/arch.json", json.dumps({"collection": "arch", "source_prefix": "arch/", "label": "A"}).encode())
    with cloud.requests() as again:  # the same task dropped again once its run has ended: a new run, nothing sent
        _handle_all(cloud)
    document = _record(cloud)
    assert document["status"] == "done" and document["run"] != ended
    assert [path for method, path in again if method == "PUT" and path.startswith("/tiler-source/arch/")] == []


def test_a_start_that_dies_midway_resumes_without_redoing_finished_batches(archive, monkeypatch):
    cloud = archive
    cloud.upload("tasks/arch.json", json.dumps({"collection": "arch", "source_prefix": "arch/"}).encode())
    (task_event,) = cloud.events()
    writing, written = S3Storage.put_json, []

    def dying_after_one_batch(self, bucket, key, document, **conditions):
        if key.startswith(runner.BATCHES_PREFIX):
            if written:
                raise ConnectionError("the start's Lambda died here")
            written.append(key)
        return writing(self, bucket, key, document, **conditions)

    monkeypatch.setattr(S3Storage, "put_json", dying_after_one_batch)
    with pytest.raises(ConnectionError):
        handle_s3_event(task_event)
    monkeypatch.setattr(S3Storage, "put_json", writing)
    first_batch = cloud.events()
    assert len(first_batch) == 1
    _handle_all(cloud, first_batch)  # the batch that was written runs and completes
    run = _record(cloud)["run"]
    assert cloud.keys(cloud.settings.metadata_bucket, f"collection-runs/arch/{run}/batches/") == {
        f"collection-runs/arch/{run}/batches/00000.json"
    }
    done_before = {key: cloud.record(key)["updated_at"] for key in (f"arch/I{i}/I{i}_001" for i in range(2))}

    with cloud.requests_to(cloud.settings.source_bucket) as source:
        handle_s3_event(task_event)  # Lambda's retry of the start
        restarted = cloud.events()
        handle_s3_event(first_batch[0])  # and a late duplicate of the finished batch's event
        repeated = cloud.events()
    writes = sorted(path for method, path in source if method == "PUT")
    assert writes == [f"/tiler-source/collection-batches/arch/{run}/{n:05}.json" for n in (1, 2)]
    assert len(restarted) == 2 and repeated == []  # finished batch: nothing re-sent
    _handle_all(cloud, restarted)
    document = _record(cloud)
    assert document["status"] == "done" and document["run"] == run
    assert document["progress"] == {"done": ITEMS * PAGES, "total": ITEMS * PAGES}
    assert {key: cloud.record(key)["updated_at"] for key in done_before} == done_before  # not converted again
    assert len(json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/arch/collection.json"))["items"]) == 6


def test_an_image_deleted_before_its_batch_runs_is_listed_gone_and_the_run_still_ends(cloud):
    for page in (1, 2):
        cloud.upload(f"gone/A/A_{page:03}.png", photo(40, 32), ".png")
    cloud.events()
    cloud.upload("tasks/gone.json", json.dumps({"collection": "gone", "source_prefix": "gone/"}).encode())
    (task_event,) = cloud.events()
    handle_s3_event(task_event)
    cloud.s3.delete_object(Bucket=cloud.settings.source_bucket, Key="gone/A/A_002.png")
    _handle_all(cloud)
    document = _record(cloud, "gone")
    assert document["status"] == "failed" and document["progress"] == {"done": 1, "total": 2}
    assert [(f["id"], f["status"]) for f in document["failures"]] == [("gone/A/A_002", "gone")]
    assert not cloud.tiles("collections/gone/")


def test_batches_hold_whole_items_and_split_only_an_item_larger_than_a_batch():
    items = [
        {"identifier": name, "pages": list(range(count))} for name, count in (("a", 2), ("b", 2), ("c", 5), ("d", 1))
    ]
    packed = plan.batches(items, size=4)
    assert [[(i["identifier"], len(i["pages"]), i["part"]) for i in batch] for batch in packed] == [
        [("a", 2, [0, 1]), ("b", 2, [0, 1])],
        [("c", 4, [0, 2])],
        [("c", 1, [1, 2])],
        [("d", 1, [0, 1])],
    ]


def test_an_item_split_over_batches_is_joined_in_page_order(cloud, monkeypatch):
    monkeypatch.setattr(plan, "BATCH_IMAGES", 2)
    for page in range(1, 6):
        cloud.upload(f"split/Long/Long_{page:03}.png", photo(40 + page, 32), ".png")
    cloud.upload("split/Short/Short_001.png", photo(40, 32), ".png")
    cloud.events()
    cloud.upload("tasks/split.json", json.dumps({"collection": "split", "source_prefix": "split/"}).encode())
    _handle_all(cloud)
    document = _record(cloud, "split")
    assert document["status"] == "done" and document["batches"] == 4
    long = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/split/Long/manifest.json"))
    assert [canvas["width"] for canvas in long["items"]] == [41, 42, 43, 44, 45]
    assert [canvas["label"]["none"][0] for canvas in long["items"]] == [f"Page {n}" for n in range(1, 6)]
    listing = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/split/collection.json"))
    assert [item["label"]["none"][0] for item in listing["items"]] == ["Long", "Short"]
    late = cloud.record("split/Short/Short_001")  # a late duplicate delivery of an image of a completed batch
    with cloud.requests() as again:
        runner.image_finished(late, cloud.settings, late["source"]["key"])
    assert [path for method, path in again if method == "PUT" and path.startswith("/tiler-tiles/")] == []
    assert _record(cloud, "split")["status"] == "done"


def test_a_batch_whose_invocation_gave_up_runs_again_when_the_task_is_dropped_again(cloud, monkeypatch):
    monkeypatch.setattr(plan, "BATCH_IMAGES", 2)
    for item in ("A", "B"):
        for page in (1, 2):
            cloud.upload(f"lost/{item}/{item}_{page:03}.png", photo(40, 32), ".png")
    cloud.events()
    task = json.dumps({"collection": "lost", "source_prefix": "lost/"}).encode()
    cloud.upload("tasks/lost.json", task)
    (task_event,) = cloud.events()
    handle_s3_event(task_event)
    batch_events = {event["Records"][0]["s3"]["object"]["key"][-10:]: event for event in cloud.events()}
    _handle_all(cloud, [batch_events["00000.json"]])  # batch 1's invocation runs out of retries: its event is lost
    assert _record(cloud, "lost")["status"] == "running"
    with cloud.requests() as again:
        cloud.upload("tasks/lost.json", task)  # the same task again: the same run, resumed
        _handle_all(cloud)
    writes = sorted(path for method, path in again if method == "PUT" and "/collection-batches/" in path)
    run = _record(cloud, "lost")["run"]
    assert writes == [f"/tiler-source/collection-batches/lost/{run}/00001.json"]  # not the finished batch 0
    document = _record(cloud, "lost")
    assert document["status"] == "done" and document["progress"] == {"done": 4, "total": 4}
