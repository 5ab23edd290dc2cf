"""One key, one image, newest wins: versions, replacements, twins and takedowns on the S3 endpoint.

Interleavings are driven deterministically: a job is paused at a phase boundary (an Event it waits on), the
other deliveries run, then it is released. Every published object is checked byte for byte against a
conversion of the version it must belong to.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path, PurePosixPath

import pytest

from app import jobs, records
from app.events import handle_s3_event
from app.ids import distinct_id
from app.jobs import InProgressElsewhere
from app.takedown import ImageBusy
from app.web import create_app
from config import Settings
from tests.helpers import convert_local, photo
from tests.pipeline.test_documents import multipage_tiff

META = "tiler-metadata"


def _deliver(cloud, key, body, suffix=".jpg"):
    """Upload ``body`` as ``key``; its ObjectCreated event (and any other waiting)."""
    cloud.upload(key, body, suffix)
    return _one(cloud.events())


def _one(events):
    return {"Records": [record for event in events for record in event["Records"]]}


def _expected(cloud, tmp_path: Path, key: str, body: bytes, image_id: str) -> dict[str, bytes]:
    """Every tiles-bucket object a conversion of exactly ``body`` publishes, as the CLI writes it."""
    src = tmp_path / f"expected-{len(list(tmp_path.iterdir()))}" / PurePosixPath(key).name
    src.parent.mkdir()
    src.write_bytes(body)
    root = src.parent / "out"
    convert_local(src, root, cloud.settings, image_id)
    tiles = root / "tiles"
    return {str(path.relative_to(tiles)): path.read_bytes() for path in tiles.rglob("*") if path.is_file()}


def _published(cloud, image_id: str, nested: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The image's objects in the tiles bucket (those of the ``nested`` images under its folder left out)."""
    keys = {k for k in cloud.tiles() if k.startswith((f"{image_id}.", f"{image_id}_files/", f"{image_id}/"))}
    keys -= {k for k in keys for other in nested if k.startswith((f"{other}.", f"{other}_files/", f"{other}/"))}
    keys |= {k for k in cloud.tiles("derivatives/") if k == f"derivatives/{image_id}.tif"}
    return {key: cloud.read(cloud.settings.tiles_bucket, key) for key in keys}


def _jpeg(width, height, seed=0) -> bytes:
    return photo(width, height).flip("horizontal" if seed % 2 else "vertical").write_to_buffer(".jpg")


class Pause:
    """Holds the first job that reaches ``jobs._check_still_ours`` (right before it publishes) until released."""

    def __init__(self, monkeypatch):
        self.reached, self.release, self._real = threading.Event(), threading.Event(), jobs._check_still_ours
        self._first = True
        monkeypatch.setattr(jobs, "_check_still_ours", self._hold)

    def _hold(self, *args):
        if self._first:
            self._first = False
            self.reached.set()
            assert self.release.wait(60)
        return self._real(*args)


def _in_thread(event):
    outcome = {}

    def run():
        try:
            outcome["result"] = handle_s3_event(event)
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_version_uploaded_while_the_first_publishes_wins_and_nothing_of_the_first_stays(cloud, tmp_path, monkeypatch):
    """The reported interleaving: v1 paused right before publishing, v2 uploaded and delivered, v1 released."""
    v1, v2 = _jpeg(1100, 900, 1), _jpeg(700, 500, 2)
    pause = Pause(monkeypatch)
    first, outcome = _in_thread(_deliver(cloud, "map.jpg", v1))
    assert pause.reached.wait(60)

    second = _deliver(cloud, "map.jpg", v2)
    with pytest.raises(InProgressElsewhere):  # v2's delivery finds the image busy: retried later
        handle_s3_event(second)
    pause.release.set()
    first.join(120)
    assert outcome["result"]["statuses"] == ["done"]

    record = cloud.record("map")  # v1's job published v1 whole, saw v2 and converted it too
    etag2 = second["Records"][0]["s3"]["object"]["eTag"]
    assert record["status"] == "done" and record["source"]["etag"] == etag2
    assert record["published"]["etag"] == etag2 and (record["facts"]["width"], record["facts"]["height"]) == (700, 500)
    assert _published(cloud, "map") == _expected(cloud, tmp_path, "map.jpg", v2, "map")
    assert handle_s3_event(second)["statuses"] == ["duplicate"]  # Lambda's retry of v2: already handled


def test_a_stalled_job_taken_over_publishes_nothing_when_it_wakes(cloud, tmp_path, monkeypatch, clock):
    v1, v2 = _jpeg(900, 700, 1), _jpeg(600, 400, 2)
    pause = Pause(monkeypatch)
    first, outcome = _in_thread(_deliver(cloud, "map.jpg", v1))
    assert pause.reached.wait(60)

    clock.advance(cloud.settings.stale_after_seconds + 1)  # v1's worker looks dead
    second = _deliver(cloud, "map.jpg", v2)
    assert handle_s3_event(second)["statuses"] == ["done"]
    pause.release.set()
    first.join(120)
    assert outcome["result"]["statuses"] == ["duplicate"]  # it lost its claim: nothing more of v1 is written

    assert cloud.record("map")["source"]["etag"] == second["Records"][0]["s3"]["object"]["eTag"]
    published, expected = _published(cloud, "map"), _expected(cloud, tmp_path, "map.jpg", v2, "map")
    assert set(published) == set(expected)
    descriptors = [key for key in expected if not key.startswith("map_files/") and "/0/default" not in key]
    assert all(published[key] == expected[key] for key in descriptors)  # v2's descriptors, v2's sizes


def test_any_sequence_of_versions_leaves_exactly_the_last_good_one(cloud, tmp_path):
    """Large, then a corrupt upload (failed), then small: only the small one's objects stay, byte for byte."""
    large, small = _jpeg(2100, 2100, 1), _jpeg(700, 500, 2)
    handle_s3_event(_deliver(cloud, "scan.jpg", large))
    large_published = _published(cloud, "scan")

    assert handle_s3_event(_deliver(cloud, "scan.jpg", b"\xff\xd8\xff broken upload"))["statuses"] == ["failed"]
    record = cloud.record("scan")
    assert record["status"] == "failed" and record["published"]["width"] == 2100  # the page says what is shown
    assert _published(cloud, "scan") == large_published  # the failed version touched nothing

    handle_s3_event(_deliver(cloud, "scan.jpg", small))
    assert _published(cloud, "scan") == _expected(cloud, tmp_path, "scan.jpg", small, "scan")
    assert len(large_published) > 3 * len(_published(cloud, "scan"))


def test_a_replacement_whose_first_attempt_crashed_still_leaves_nothing_behind(cloud, tmp_path, monkeypatch):
    from concurrent.futures import Future

    from app.storage.publishing import Publisher

    large, small = _jpeg(1800, 1500, 1), _jpeg(500, 400, 2)
    handle_s3_event(_deliver(cloud, "scan.jpg", large))
    event = _deliver(cloud, "scan.jpg", small)
    real_upload, calls = Publisher.upload, []

    def crash_after_three(self, *args):
        calls.append(args)
        if len(calls) > 3:
            crashed = Future()
            crashed.set_exception(RuntimeError("injected crash"))
            return crashed
        return real_upload(self, *args)

    monkeypatch.setattr(Publisher, "upload", crash_after_three)
    with pytest.raises(RuntimeError):
        handle_s3_event(event)
    assert cloud.record("scan")["status"] == "retrying"
    monkeypatch.setattr(Publisher, "upload", real_upload)
    assert handle_s3_event(event)["statuses"] == ["done"]
    assert _published(cloud, "scan") == _expected(cloud, tmp_path, "scan.jpg", small, "scan")


def test_a_replacement_converted_by_aws_batch_prunes_too(cloud, tmp_path):
    large, small = _jpeg(1800, 1500, 1), _jpeg(500, 400, 2)
    handle_s3_event(_deliver(cloud, "scan.jpg", large))
    event = _deliver(cloud, "scan.jpg", small)
    ref = jobs.SourceRef("tiler-source", "scan.jpg", event["Records"][0]["s3"]["object"]["eTag"])
    record = jobs.handle(ref, cloud.settings, jobs.Runtime(owner="batch", may_dispatch=False))
    assert record["status"] == "done" and record["route"] == "batch"
    assert _published(cloud, "scan") == _expected(cloud, tmp_path, "scan.jpg", small, "scan")


def test_a_document_replaced_by_a_single_image_leaves_no_pages(cloud, tmp_path):
    cloud.upload("ledger.tif", multipage_tiff(tmp_path / "three.tif", [(300, 200)] * 3).read_bytes())
    while events := cloud.events():
        for event in events:
            handle_s3_event(event)
    assert cloud.record("ledger")["status"] == "done" and cloud.record("ledger/p0002")
    single = _jpeg(400, 300, 1)
    handle_s3_event(_deliver(cloud, "ledger.tif", single, ".tif"))
    for event in cloud.events():  # the removals of the page sources
        handle_s3_event(event)
    assert cloud.record("ledger")["status"] == "done" and cloud.record("ledger/p0002") is None
    assert not cloud.tiles("ledger/p") and not cloud.keys("tiler-source", "pages/")
    assert not cloud.keys(META, "ledger/p") and not cloud.keys(META, "jobs/ledger/")
    assert _published(cloud, "ledger") == _expected(cloud, tmp_path, "ledger.tif", single, "ledger")


def test_deleting_a_source_withdraws_everything_it_published(cloud):
    handle_s3_event(_deliver(cloud, "box/letter.jpg", _jpeg(900, 700)))
    handle_s3_event(_deliver(cloud, "box/letter/enclosure.jpg", _jpeg(300, 200)))  # a nested image stays
    nested = ("box/letter/enclosure",)
    enclosure = _published(cloud, "box/letter/enclosure")
    assert _published(cloud, "box/letter", nested) and cloud.keys(META, "box/letter.json")

    cloud.s3.delete_object(Bucket="tiler-source", Key="box/letter.jpg")
    (removal,) = cloud.events()
    assert removal["Records"][0]["eventName"].startswith("ObjectRemoved:")
    assert handle_s3_event(removal)["statuses"] == ["withdrawn"]
    assert _published(cloud, "box/letter", nested) == {} and not cloud.keys(META, "box/letter.json")
    assert _published(cloud, "box/letter/enclosure") == enclosure
    record = cloud.record("box/letter")
    assert record["withdrawn"]["by"] == "source deleted" and record["withdrawn"]["at"] == record["finished_at"]
    assert "index/withdrawn/box/letter" in cloud.keys(META, "index/withdrawn/")
    assert handle_s3_event(removal)["statuses"] == ["withdrawn"]  # a duplicate removal changes nothing
    client = create_app(cloud.settings).test_client()
    assert client.get("/iiif/3/box/letter/info.json").status_code == 404
    assert client.get("/iiif/3/box/letter/full/max/0/default.jpg").status_code == 404


def test_deleting_a_source_withdraws_its_2_1_service_too(cloud, monkeypatch):
    monkeypatch.setenv("IIIF_VERSIONS", "2,3")
    handle_s3_event(_deliver(cloud, "box/letter.jpg", _jpeg(900, 700)))
    handle_s3_event(_deliver(cloud, "box/letter/enclosure.jpg", _jpeg(300, 200)))
    enclosure = cloud.tiles("iiif/2/box/letter/enclosure/")
    assert "iiif/2/box/letter/info.json" in cloud.tiles("iiif/2/box/letter/") and enclosure

    cloud.s3.delete_object(Bucket="tiler-source", Key="box/letter.jpg")
    assert handle_s3_event(cloud.events()[-1])["statuses"] == ["withdrawn"]
    assert cloud.tiles("iiif/2/box/letter/") == enclosure  # the nested image's 2.1 service stays
    client = create_app(Settings.from_env()).test_client()
    assert client.get("/iiif/2/box/letter/info.json").status_code == 404


def test_a_late_removal_of_a_key_uploaded_again_withdraws_nothing(cloud):
    handle_s3_event(_deliver(cloud, "a.jpg", _jpeg(300, 200)))
    cloud.s3.delete_object(Bucket="tiler-source", Key="a.jpg")
    cloud.upload("a.jpg", _jpeg(320, 200, 1))
    removal, created = cloud.events()
    assert handle_s3_event(created)["statuses"] == ["done"]  # S3 may deliver the newer event first
    assert handle_s3_event(removal)["statuses"] == ["duplicate"]
    assert cloud.record("a")["status"] == "done" and _published(cloud, "a")


def test_a_source_deleted_while_it_converts_is_withdrawn_when_the_job_ends(cloud, monkeypatch):
    pause = Pause(monkeypatch)
    first, outcome = _in_thread(_deliver(cloud, "a.jpg", _jpeg(600, 400)))
    assert pause.reached.wait(60)
    cloud.s3.delete_object(Bucket="tiler-source", Key="a.jpg")
    with pytest.raises(ImageBusy):  # the removal cannot take the image from a running job ...
        handle_s3_event(_one(cloud.events()))
    pause.release.set()
    first.join(120)
    assert outcome["result"]["statuses"] == ["withdrawn"]  # ... which withdraws it itself when it ends
    assert _published(cloud, "a") == {} and cloud.record("a")["status"] == "withdrawn"


def test_twins_keep_their_ids_apart_until_the_holder_is_deleted(cloud):
    handle_s3_event(_deliver(cloud, "x.jpg", _jpeg(400, 300)))
    before = _published(cloud, "x")
    assert handle_s3_event(_deliver(cloud, "x.png", photo(500, 300).write_to_buffer(".png")))["statuses"] == ["failed"]
    refused = cloud.record(distinct_id("x.png"))
    assert refused["conflict"] == "x.jpg" and "x.jpg" in refused["error"] and "rename" in refused["error"]
    assert _published(cloud, "x") == before and cloud.record("x")["source"]["key"] == "x.jpg"

    cloud.s3.delete_object(Bucket="tiler-source", Key="x.jpg")
    handle_s3_event(_one(cloud.events()))
    cloud.upload("x.png", photo(500, 300).write_to_buffer(".png"))  # retried (the dashboard touches it)
    assert handle_s3_event(_one(cloud.events()))["statuses"] == ["done"]
    assert cloud.record("x")["source"]["key"] == "x.png" and cloud.record(distinct_id("x.png")) is None


def test_a_key_with_an_over_long_name_fails_once_with_its_reason(cloud):
    key = "box/" + "n" * 300 + ".jpg"
    assert handle_s3_event(_deliver(cloud, key, _jpeg(100, 100)))["statuses"] == ["failed"]
    record = cloud.record(distinct_id(key))
    assert "over 255 bytes" in record["error"] and record["source"]["key"] == key and cloud.tiles() == set()


def test_a_withdrawn_image_is_not_published_again_by_a_late_duplicate(cloud):
    from app.takedown import withdraw

    event = _deliver(cloud, "a.jpg", _jpeg(300, 200))
    handle_s3_event(event)
    record = withdraw(cloud.settings, "a", "registrar", "rights", "test")
    assert record["status"] == "withdrawn" and record["withdrawn"]["by"] == "registrar"
    assert handle_s3_event(copy.deepcopy(event))["statuses"] == ["duplicate"]
    assert _published(cloud, "a") == {} and records.read_record  # the source stays; nothing comes back
    assert json.loads(cloud.read(META, "jobs/a.json"))["status"] == "withdrawn"


def test_deleting_a_document_withdraws_its_pages_and_their_sources(cloud, tmp_path):
    cloud.upload("ledger.tif", multipage_tiff(tmp_path / "two.tif", [(300, 200)] * 2).read_bytes())
    while events := cloud.events():
        for event in events:
            handle_s3_event(event)
    assert cloud.record("ledger")["status"] == "done" and cloud.tiles("ledger/p0002")
    cloud.s3.delete_object(Bucket="tiler-source", Key="ledger.tif")
    statuses = [handle_s3_event(event)["statuses"] for event in cloud.events()]
    assert statuses == [["withdrawn"]]
    for event in cloud.events():  # the removals of its page sources change nothing more
        handle_s3_event(event)
    assert cloud.tiles("ledger") == set() and not cloud.keys("tiler-source", "pages/")
    assert [cloud.record(i)["status"] for i in ("ledger", "ledger/p0001", "ledger/p0002")] == ["withdrawn"] * 3
    assert not cloud.keys(META, "ledger/")
