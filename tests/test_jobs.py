"""Jobs against the S3 endpoint: crashes, throttling, deadlines, AWS Batch, bursts."""

import json
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest

from app import jobs, records
from app.errors import TransientError
from app.events import handle_s3_event
from app.jobs import InProgressElsewhere
from app.model import SourceRef
from app.records import Journal, claim_key
from app.storage.publishing import Publisher
from app.storage.s3 import S3Storage
from tests.helpers import journals_settled, photo

DESCRIPTORS = ("info.json", ".dzi", "/full/max/0/default.jpg")


class FakeContext:
    aws_request_id = "req-1"

    def __init__(self, seconds_left: float) -> None:
        self.seconds_left = seconds_left

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds_left * 1000)


def _one_event(cloud, key="img.jpg", image=None):
    cloud.upload(key, image if image is not None else photo(1100, 900))
    (event,) = cloud.events()
    return event


def test_published_objects_carry_types_caching_and_a_complete_record(cloud):
    handle_s3_event(_one_event(cloud))
    head = cloud.s3.head_object(Bucket="tiler-tiles", Key="img_files/11/0_0.jpg")
    assert head["ContentType"] == "image/jpeg" and "max-age" in head["CacheControl"]
    info = cloud.s3.head_object(Bucket="tiler-tiles", Key="img/info.json")
    assert info["ContentType"].startswith("application/ld+json")
    assert cloud.s3.head_object(Bucket="tiler-tiles", Key="img.dzi")["ContentType"] == "application/xml"
    manifest = cloud.s3.head_object(Bucket="tiler-tiles", Key="img/manifest.json")
    assert "presentation/3" in manifest["ContentType"]
    assert json.loads(cloud.read("tiler-tiles", "img/manifest.json"))["label"] == {"none": ["img"]}
    assert json.loads(cloud.read("tiler-tiles", "img/info.json"))["id"] == f"{cloud.url}/tiler-tiles/img"
    assert json.loads(cloud.read("tiler-metadata", "img.json"))["image"]["width"] == 1100

    record = cloud.record("img")
    assert record["status"] == "done" and record["route"] == "lambda" and record["error"] is None
    assert record["progress"] == {"phase": "done", "done": record["objects"], "total": record["objects"]}
    assert record["objects"] == len(cloud.tiles()) + 1  # + the metadata JSON
    assert {"fetch", "tile", "publish", "total"} <= set(record["timings"])
    assert record["source"]["bucket"] == "tiler-source" and record["source"]["size"] > 0


def test_a_crash_mid_publish_exposes_no_descriptor_and_the_retry_completes(cloud, monkeypatch):
    event = _one_event(cloud)
    real_upload, calls = Publisher.upload, []

    def crash_after_five(self, *args):
        calls.append(args)
        if len(calls) > 5:
            crashed = Future()
            crashed.set_exception(RuntimeError("injected crash"))
            return crashed
        return real_upload(self, *args)

    monkeypatch.setattr(Publisher, "upload", crash_after_five)
    with pytest.raises(RuntimeError, match="injected crash"):
        handle_s3_event(event)
    published = cloud.tiles()
    assert published and not [key for key in published if key.endswith(DESCRIPTORS)]
    assert cloud.record("img")["status"] == "retrying" and "injected crash" in cloud.record("img")["error"]
    assert list(cloud.work_dir.iterdir()) == []  # no staging debris

    monkeypatch.setattr(Publisher, "upload", real_upload)
    assert handle_s3_event(event)["statuses"] == ["done"]
    assert {"img/info.json", "img.dzi", "img/full/max/0/default.jpg"} <= cloud.tiles()


def test_a_dead_workers_claim_is_taken_over(cloud, monkeypatch):
    """A process killed mid-job never releases its claim: the next delivery takes over once it is stale."""
    event = _one_event(cloud)
    etag = event["Records"][0]["s3"]["object"]["eTag"]
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cloud.s3.put_object(
        Bucket="tiler-metadata", Key=claim_key("img"), Body=json.dumps({"etag": etag, "owner": "dead", "at": long_ago})
    )
    cloud.s3.put_object(
        Bucket="tiler-metadata",
        Key="jobs/img.json",
        Body=json.dumps({"id": "img", "status": "running", "source": {"etag": etag}, "updated_at": long_ago}),
    )

    assert handle_s3_event(event)["statuses"] == ["done"]
    claim = json.loads(cloud.read("tiler-metadata", claim_key("img")))
    assert claim["took_over_from"] == "dead"


def test_a_live_claim_is_left_alone(cloud):
    event = _one_event(cloud)
    etag = event["Records"][0]["s3"]["object"]["eTag"]
    now = datetime.now(UTC).isoformat()
    cloud.s3.put_object(
        Bucket="tiler-metadata", Key=claim_key("img"), Body=json.dumps({"etag": etag, "owner": "busy", "at": now})
    )
    with pytest.raises(InProgressElsewhere):  # fails, so Lambda retries once the other worker is done or dead
        handle_s3_event(event)
    assert cloud.record("img") is None


def test_the_heartbeat_keeps_a_long_job_from_being_taken_over_until_it_stops(cloud, clock):
    """A conversion far longer than STALE_AFTER_SECONDS keeps its claim while its progress beats; once the beat
    stops for longer than that (the worker died), the next delivery takes the job over and completes it."""
    event, settings = _one_event(cloud), cloud.settings
    store = S3Storage(settings.upload_workers)
    ref = store.head(SourceRef(settings.source_bucket, "img.jpg"))
    claimed = records.claim(store, settings.metadata_bucket, "img", ref, "worker-1", settings.stale_after_seconds)
    assert claimed == records.Claim.OURS
    journal = Journal(store, settings.metadata_bucket, "img", ref, "lambda", "worker-1", clock=clock.monotonic)
    journal.phase("convert", 0, 100)  # what jobs.handle does; then convert reports progress as it goes
    for percent in range(10, 100, 10):
        clock.advance(settings.stale_after_seconds / 2)
        journal.progress(percent, 100)
        journals_settled()
        assert cloud.record("img")["updated_at"] == records.now_iso()  # the record says the job is alive now
        with pytest.raises(InProgressElsewhere):  # so a duplicate delivery meanwhile is told to come back later
            handle_s3_event(event)
    assert clock.seconds > 2 * settings.stale_after_seconds

    clock.advance(settings.stale_after_seconds + 1)  # no beat since: the worker is gone
    assert handle_s3_event(event)["statuses"] == ["done"]
    claim = json.loads(cloud.read(settings.metadata_bucket, claim_key("img")))
    assert claim["took_over_from"] == "worker-1"


def test_slowdown_503s_are_survived(cloud):
    """Real 503 answers from the endpoint: to tile uploads (the native uploader) and to job records (boto3)."""
    event = _one_event(cloud)
    with cloud.slow_down(6, "tiler-tiles") as refused_tiles, cloud.slow_down(2, "tiler-metadata") as refused_records:
        assert handle_s3_event(event)["statuses"] == ["done"]
    assert len(refused_tiles) == 6 and len(refused_records) == 2
    assert {"img/info.json", "img.dzi"} <= cloud.tiles()
    for path in refused_tiles:  # each refused object landed on a retry, whole
        bucket, key = path.lstrip("/").split("/", 1)
        assert cloud.read(bucket, key)[:2] == b"\xff\xd8" or key.endswith((".json", ".dzi"))


def _with_batch(cloud, monkeypatch, **env):
    queue, definition = cloud.enable_batch()
    for name, value in {"BATCH_JOB_QUEUE": queue, "BATCH_JOB_DEFINITION": definition, **env}.items():
        monkeypatch.setenv(name, str(value))


def test_too_little_remaining_time_hands_the_job_to_batch_before_converting(cloud, monkeypatch):
    _with_batch(cloud, monkeypatch)
    assert handle_s3_event(_one_event(cloud), FakeContext(seconds_left=8))["statuses"] == ["queued"]
    record = cloud.record("img")
    assert record["route"] == "batch" and record["batch_job_id"] and "Lambda has left" in record["routed_because"]
    assert cloud.tiles() == set()


def test_time_running_out_during_conversion_hands_the_job_to_batch_and_deletes_its_early_tiles(cloud, monkeypatch):
    """Enough time to convert, too little left after it to publish: Batch gets the job, and the tiles that went up
    while libvips worked are deleted, since no descriptor will ever point at them."""
    _with_batch(cloud, monkeypatch)
    context, converting = FakeContext(seconds_left=900), jobs.convert

    def converting_uses_up_the_time(*args, **kwargs):
        conversion = converting(*args, **kwargs)
        context.seconds_left = jobs.SAFETY_SECONDS
        return conversion

    monkeypatch.setattr(jobs, "convert", converting_uses_up_the_time)
    event = _one_event(cloud, "big.jpg", photo(2600, 2600))
    with cloud.requests_to(cloud.settings.tiles_bucket) as requests:
        assert handle_s3_event(event, context)["statuses"] == ["queued"]
    record = cloud.record("big")
    assert record["route"] == "batch" and record["routed_because"] == "not enough Lambda time left to publish"
    (job,) = cloud.batch_jobs()
    assert job["jobId"] == record["batch_job_id"]
    assert job["parameters"] == {"bucket": "tiler-source", "key": "big.jpg", "etag": record["source"]["etag"]}
    assert any(method == "PUT" and "/big_files/" in path for method, path in requests)  # up while converting
    assert cloud.tiles() == set()


def test_oversize_goes_to_batch_and_the_container_publishes_identical_output(cloud, monkeypatch):
    from batch_fallback.__main__ import main as batch_main

    image = photo(1300, 900)
    _with_batch(cloud, monkeypatch, LAMBDA_MAX_PIXELS=1_000_000)
    assert handle_s3_event(_one_event(cloud, "big.jpg", image))["statuses"] == ["queued"]
    (job,) = cloud.batch_jobs()
    record = cloud.record("big")
    assert record["status"] == "queued" and record["batch_job_id"] == job["jobId"]
    assert "LAMBDA_MAX_PIXELS" in record["routed_because"]
    assert job["parameters"] == {"bucket": "tiler-source", "key": "big.jpg", "etag": record["source"]["etag"]}

    assert batch_main(["--bucket", "tiler-source", "--key", "big.jpg", "--etag", record["source"]["etag"]]) == 0
    record = cloud.record("big")
    assert record["status"] == "done" and record["route"] == "batch"

    monkeypatch.setenv("LAMBDA_MAX_PIXELS", "100000000")
    handle_s3_event(_one_event(cloud, "twin.jpg", image))
    assert cloud.record("twin")["route"] == "lambda"
    big, twin = sorted(cloud.tiles("big")), sorted(cloud.tiles("twin"))
    assert [key.replace("big", "twin", 1) for key in big] == twin
    for key in big:
        batch_bytes, lambda_bytes = (
            cloud.read("tiler-tiles", key),
            cloud.read("tiler-tiles", key.replace("big", "twin", 1)),
        )
        if key.endswith((".json", ".dzi")):  # descriptors name the image; tiles must be the very same bytes
            batch_bytes = batch_bytes.replace(b"big", b"twin")
        assert batch_bytes == lambda_bytes, key


def test_duplicate_oversize_events_submit_one_batch_job(cloud, monkeypatch):
    _with_batch(cloud, monkeypatch, LAMBDA_MAX_PIXELS=1000)
    event = _one_event(cloud)
    handle_s3_event(event)
    handle_s3_event(event)
    assert len(cloud.batch_jobs()) == 1


def test_a_batch_submit_failure_is_recorded_and_retried(cloud, monkeypatch):
    _with_batch(cloud, monkeypatch, LAMBDA_MAX_PIXELS=1000, BATCH_JOB_QUEUE="no-such-queue")
    event = _one_event(cloud)
    with pytest.raises(TransientError, match="AWS Batch did not accept the job"):
        handle_s3_event(event)
    record = cloud.record("img")
    assert record["status"] == "retrying" and "no-such-queue" in record["error"]
    claim = json.loads(cloud.read("tiler-metadata", claim_key("img")))
    assert claim["released"]  # so Lambda's retry can claim it again at once


def test_oversize_without_batch_fails_with_a_clear_reason(cloud, monkeypatch):
    monkeypatch.setenv("LAMBDA_MAX_PIXELS", "1000")
    assert handle_s3_event(_one_event(cloud))["statuses"] == ["failed"]
    assert "BATCH_JOB_QUEUE" in cloud.record("img")["error"]


def test_reconverting_a_changed_image_removes_tiles_it_no_longer_has(cloud):
    handle_s3_event(_one_event(cloud, "map.jpg", photo(1500, 1100)))
    before = cloud.tiles("map")
    handle_s3_event(_one_event(cloud, "map.jpg", photo(300, 200)))
    after = cloud.tiles("map")
    assert len(after) < len(before)
    assert after == {key for key in after if key.startswith("map")}
    assert all(not key.startswith("map_files/11/") for key in after)


def test_a_burst_of_uploads_all_end_done_or_failed(cloud):
    cloud.stack.start()
    try:
        expected = {}
        for number in range(100):
            key = f"burst/{number:03}.png"
            if number % 10 == 7:
                cloud.upload(key, b"broken upload %d" % number)
                expected[f"burst/{number:03}"] = "failed"
            else:
                cloud.upload(key, photo(90 + number, 70), ".png")
                expected[f"burst/{number:03}"] = "done"
        deadline, final = time.monotonic() + 240, {}
        while len(final) < len(expected) and time.monotonic() < deadline:
            for image_id in set(expected) - set(final):
                record = cloud.record(image_id)
                if record and record["status"] in ("done", "failed"):
                    final[image_id] = record
            time.sleep(0.5)
    finally:
        cloud.stack.stop()
    assert {image_id: record["status"] for image_id, record in final.items()} == expected
    assert all(record["error"] for record in final.values() if record["status"] == "failed")


def test_a_late_duplicate_never_resubmits_a_queued_batch_job(cloud, monkeypatch, clock):
    _with_batch(cloud, monkeypatch, LAMBDA_MAX_PIXELS=1000)
    event = _one_event(cloud)
    assert handle_s3_event(event)["statuses"] == ["queued"]
    clock.advance(cloud.settings.stale_after_seconds + 1)  # the queued record is stale: Batch owns it all the same
    assert handle_s3_event(event)["statuses"] == ["duplicate"]
    assert len(cloud.batch_jobs()) == 1


def test_scratch_left_by_killed_jobs_is_swept_and_live_jobs_are_left_alone(cloud):
    import os

    dead, reused, live = (
        cloud.work_dir / name for name in ("tiler-999999-abc", f"tiler-{os.getpid()}-old", "tiler-1-running")
    )
    for folder in (dead, reused, live):
        (folder / "out").mkdir(parents=True)
    handle_s3_event(_one_event(cloud))
    assert sorted(p.name for p in cloud.work_dir.iterdir()) == ["tiler-1-running"]  # pid 1 is alive: its job runs on


def test_an_image_that_breaks_mid_tiling_leaves_none_of_its_early_tiles_behind(cloud, monkeypatch):
    """Tiles go up while libvips works; when the decode then fails, the ones that landed are deleted."""
    real_put, landed = Publisher.upload, []

    def counting_put(self, *args):
        upload = real_put(self, *args)
        upload.add_done_callback(lambda done: done.exception() or landed.append(args[2]))
        return upload

    monkeypatch.setattr(Publisher, "upload", counting_put)
    whole = photo(2600, 2600).write_to_buffer(".jpg", Q=95)
    assert handle_s3_event(_one_event(cloud, "torn.jpg", whole[: len(whole) * 3 // 4]))["statuses"] == ["failed"]
    record = cloud.record("torn")
    assert record["status"] == "failed" and "damaged or truncated" in record["error"]
    assert any(key.startswith("torn_files/") for key in landed)  # some tiles were up before the decode failed
    assert cloud.tiles() == set()


def test_a_jpeg_2000_over_its_memory_bound_goes_to_batch_and_one_batch_could_not_hold_fails(
    cloud, monkeypatch, tmp_path
):
    from tests.helpers import jpeg2000

    master = jpeg2000(photo(500, 400), tmp_path / "master.jp2").read_bytes()
    _with_batch(cloud, monkeypatch, LAMBDA_MAX_JP2_PIXELS=100_000)  # a JPEG of this size would stay in Lambda
    assert handle_s3_event(_one_event(cloud, "master.jp2", master))["statuses"] == ["queued"]
    assert "LAMBDA_MAX_JP2_PIXELS" in cloud.record("master")["routed_because"]
    monkeypatch.setenv("BATCH_MEMORY_MB", "3")  # 0.2 MP at 20 MB per MP: 4 MB, more than the Batch job has
    assert handle_s3_event(_one_event(cloud, "huge.jp2", master))["statuses"] == ["failed"]
    error = cloud.record("huge")["error"]
    assert "needs about 4 MB, more than the 3 MB of an AWS Batch job (BATCH_MEMORY_MB)" in error
    assert cloud.tiles() == set() and len(cloud.batch_jobs()) == 1
