"""The S3 event entry point, fed the events the S3 endpoint really sends."""

import copy
import threading

import pytest

from app.errors import SourceGone
from app.events import UnroutableRecord, handle_s3_event
from app.ids import distinct_id, image_id_for
from app.jobs import InProgressElsewhere
from app.storage.s3 import S3Storage
from tests.helpers import photo


def test_every_record_of_an_event_is_handled(cloud):
    cloud.upload("one.jpg", photo(300, 200))
    cloud.upload("two.jpg", photo(200, 300))
    first, second = cloud.events()
    event = {"Records": first["Records"] + second["Records"]}

    assert handle_s3_event(event) == {"handled": 2, "ignored": 0, "statuses": ["done", "done"]}
    assert cloud.record("one")["status"] == cloud.record("two")["status"] == "done"
    assert {"one/info.json", "two/info.json", "one.dzi", "two.dzi"} <= cloud.tiles()


def test_keys_are_decoded_as_s3_encodes_them(cloud):
    key = "scans/a b+c (é).tif"
    cloud.upload(key, photo(120, 90), ".tif")
    (event,) = cloud.events()
    sent = event["Records"][0]["s3"]["object"]["key"]
    assert "a+b%2Bc+%28%C3%A9%29.tif" in sent  # form-encoded, as S3 sends keys ('+' is a space)

    handle_s3_event(event)
    record = cloud.record(image_id_for(key))
    assert record["status"] == "done" and record["source"]["key"] == key
    assert image_id_for(key).startswith("scans/a_b_c__e_~")  # é transliterated, the key's hash keeps it apart


def test_test_events_and_folder_markers_are_ignored_and_output_shaped_keys_refused(cloud):
    cloud.upload("x.jpg", photo(64, 64))
    (event,) = cloud.events()
    assert handle_s3_event({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "tiler-source"})["ignored"] == 1
    folder = copy.deepcopy(event)
    folder["Records"][0]["s3"]["object"]["key"] = "folder/"
    assert handle_s3_event(folder) == {"handled": 0, "ignored": 1, "statuses": []}

    refused = {
        "x_files/9/0_0.jpg": "named like a published tile",
        "x/info.json": "named like a published tile",
        "x.dzi": "named like a published tile",
        "x/full/max/0/default.jpg": "named like a published tile",
        "jobs/x.jpg": "the folder jobs/ is where the service keeps",
        "pages/x.jpg": "holds the pages the service splits",
    }
    for key in refused:
        cloud.upload(key, photo(64, 64))
    events = cloud.events()
    assert handle_s3_event({"Records": [r for e in events for r in e["Records"]]})["statuses"] == ["failed"] * 6
    for key, reason in refused.items():
        record = cloud.record(distinct_id(key))
        assert record["status"] == "failed" and reason in record["error"] and key in record["error"]
    assert cloud.record("x") is None and cloud.tiles() == set()


def test_a_record_that_cannot_be_routed_is_an_error(cloud):
    cloud.upload("x.jpg", photo(64, 64))
    (event,) = cloud.events()
    event["Records"][0]["s3"]["bucket"]["name"] = "somebody-elses-bucket"
    with pytest.raises(UnroutableRecord, match="SOURCE_BUCKET"):
        handle_s3_event(event)
    with pytest.raises(UnroutableRecord):
        handle_s3_event({"Records": [{"eventSource": "aws:sqs"}]})


def test_duplicate_delivery_converts_once(cloud):
    cloud.upload("dup.jpg", photo(700, 500))
    (event,) = cloud.events()
    assert handle_s3_event(event)["statuses"] == ["done"]
    first = cloud.record("dup")
    published = cloud.tiles()

    assert handle_s3_event(event)["statuses"] == ["duplicate"]
    assert cloud.record("dup") == first and cloud.tiles() == published


def test_concurrent_duplicates_convert_once(cloud):
    cloud.upload("race.jpg", photo(900, 700))
    (event,) = cloud.events()
    results, start = [], threading.Barrier(3)

    def deliver():
        start.wait()
        try:
            results.append(handle_s3_event(event)["statuses"][0])
        except InProgressElsewhere:  # Lambda retries it later, and then it finds the job done
            results.append("busy")

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("done") == 1 and set(results) <= {"done", "busy", "duplicate"}
    assert cloud.record("race")["status"] == "done"
    assert handle_s3_event(event)["statuses"] == ["duplicate"]  # the retry of a busy delivery


def test_a_stale_event_is_skipped_and_the_current_version_wins(cloud):
    cloud.upload("v.jpg", photo(300, 300))
    cloud.upload("v.jpg", photo(500, 200))
    old, new = cloud.events()

    assert handle_s3_event(old)["statuses"] == ["duplicate"]  # skipped: the object has moved on
    assert cloud.record("v") is None
    handle_s3_event(new)
    record = cloud.record("v")
    assert record["status"] == "done" and record["source"]["etag"] == new["Records"][0]["s3"]["object"]["eTag"]
    assert (record["facts"]["width"], record["facts"]["height"]) == (500, 200)


def test_a_deleted_object_ends_as_gone_without_retry(cloud):
    cloud.upload("bye.jpg", photo(64, 64))
    (event,) = cloud.events()
    cloud.s3.delete_object(Bucket="tiler-source", Key="bye.jpg")

    assert handle_s3_event(event)["statuses"] == ["gone"]
    record = cloud.record("bye")
    assert record["status"] == "gone" and "does not exist" in record["error"]


@pytest.mark.parametrize("when", ["converted", "uploaded"])
def test_a_late_event_of_a_deleted_version_never_overwrites_the_newer_one(cloud, monkeypatch, when):
    """The key is deleted, then uploaded again. The first version's event, late, finds its object gone; the
    second version is uploaded right then ("uploaded": its event not yet handled) or even converted ("converted").
    The late event records nothing over it, and the second version ends done, listed once."""
    cloud.upload("k.jpg", photo(64, 64))
    (late,) = cloud.events()
    cloud.s3.delete_object(Bucket="tiler-source", Key="k.jpg")
    head, newer = S3Storage.head, []

    def gone_then_uploaded(store, ref):
        try:
            return head(store, ref)
        except SourceGone:
            if not newer:  # right after the late event learns its version is gone
                cloud.upload("k.jpg", photo(80, 64))
                newer.append(cloud.events()[-1])
                if when == "converted":
                    assert handle_s3_event(newer[0])["statuses"] == ["done"]
            raise

    monkeypatch.setattr(S3Storage, "head", gone_then_uploaded)
    handle_s3_event(late)
    if when == "uploaded":
        assert handle_s3_event(newer[0])["statuses"] == ["done"]
    record = cloud.record("k")
    assert (record["status"], record["facts"]["width"]) == ("done", 80)
    assert {key for key in cloud.keys("tiler-metadata", "index/") if key.endswith("/k")} == {"index/done/k"}


def test_a_collections_csv_item_list_is_left_alone(cloud):
    """Collections keep their CSV in the source bucket: it is no image, and no failed record of one."""
    cloud.s3.put_object(Bucket="tiler-source", Key="Ms2016_012/Items.CSV", Body=b"file,title\nscan_001.jpg,Letter\n")
    (event,) = cloud.events()
    assert handle_s3_event(event) == {"handled": 0, "ignored": 1, "statuses": []}
    assert cloud.record("Ms2016_012/Items") is None and cloud.keys("tiler-metadata") == set()


def test_bad_input_is_failed_with_its_reason_and_not_retried(cloud):
    cloud.upload("notes.jpg", b"this is not an image")
    (event,) = cloud.events()
    assert handle_s3_event(event)["statuses"] == ["failed"]  # returned, not raised: no Lambda retry
    record = cloud.record("notes")
    assert record["status"] == "failed" and record["error"] == "not an image format libvips recognises"
    assert cloud.tiles() == set()
