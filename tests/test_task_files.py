"""Task files are untrusted input: every field is checked, and a bad task ends as a failed collection, never a loop."""

import json

import pytest

from app.collection import runner
from app.collection.task import TaskError, group_items, parse_task
from app.events import handle_s3_event
from app.model import SourceRef
from tests.helpers import photo

GOOD = {"collection": "c", "source_prefix": "c/"}


@pytest.mark.parametrize(
    "fields,reason",
    [
        ({"destination_prefix": "victim"}, "must be a folder under collections/"),  # another image's outputs
        ({"destination_prefix": "../../m"}, "'..' parts"),
        ({"destination_prefix": "collections/../jobs"}, "'..' parts"),
        ({"destination_prefix": "/collections/x"}, "no leading '/'"),
        ({"destination_prefix": "s3://other-bucket/collections/x"}, "no URL"),
        ({"destination_prefix": "collections"}, "must be a folder under collections/"),
        ({"destination_prefix": "collections/a b"}, "must be a folder under collections/"),
        ({"destination_prefix": 7}, "destination_prefix must be a string"),
        ({"csv": 123}, "csv must be a string, not int"),
        ({"csv": ["a.csv"]}, "csv must be a string, not list"),
        ({"csv": "../secrets/x.csv"}, "'..' parts"),
        ({"csv": "/etc/passwd"}, "no leading '/'"),
        ({"source_prefix": "../"}, "'..' parts"),
        ({"source_prefix": "tasks/"}, "must not be under tasks/"),
        ({"source_prefix": "s3://elsewhere/c/"}, "no URL"),
        ({"source_prefix": "a//b/"}, "empty"),
        ({"collection": 5}, "collection must be a string"),
        ({"collection": "../x"}, "use letters"),
        ({"label": {"en": "x"}}, "label must be a string"),
        ({"label": "tab\there"}, "control characters"),
        ({"public_base_url": "javascript:alert(1)"}, "http(s) URL"),
        ({"source_bucket": True}, "source_bucket must be a string"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(fields, reason):
    with pytest.raises(TaskError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_task({**GOOD, **fields})


def test_good_fields_are_kept():
    task = parse_task({**GOOD, "destination_prefix": "/collections/sub/c-2/"[1:], "csv": "c/items.csv"})
    assert (task.destination_prefix, task.csv_key, task.source_prefix) == ("collections/sub/c-2", "c/items.csv", "c/")
    assert parse_task(GOOD).destination_prefix == "collections/c"


@pytest.mark.parametrize(
    "environment,reason",
    [
        ("ACCESS_DIR=x", "environment must be a list"),
        ([{"name": "ACCESS_DIR", "value": 3}], "the value must be a string"),
        ([{"name": "ACCESS_DIR", "value": "../up/"}, {"name": "CSV_NAME", "value": "Ms2016_012.csv"}], "'..' parts"),
    ],
)
def test_bad_generator_task_files_are_refused(environment, reason):
    with pytest.raises(TaskError, match=reason):
        parse_task({"jobName": "job", "environment": environment})


def test_a_folder_named_dot_dot_cannot_name_an_item():
    with pytest.raises(TaskError, match="cannot name an item"):
        group_items(parse_task(GOOD), ["c/../1.jpg"])


def _run(cloud, body: bytes) -> dict:
    """The task file through the real event handler: it must end quietly, with no retry."""
    cloud.upload("tasks/bad.json", body)
    for event in cloud.events():
        handle_s3_event(event)
    return json.loads(cloud.read(cloud.settings.metadata_bucket, "collections/bad.json"))


@pytest.mark.parametrize(
    "body,reason",
    [
        (json.dumps({"collection": "bad", "source_prefix": "c/"}).encode("utf-16"), "not UTF-8"),
        ('{"collection": "bad", "source_prefix": "c/", "label": "Café"}'.encode("latin-1"), "not UTF-8"),
        (json.dumps({"collection": "bad", "source_prefix": "c/", "csv": 123}).encode(), "csv must be a string"),
        (b"[" * 100_000, "nested too deeply"),
        (b"\x00\x01 not json", "not valid JSON"),
        (json.dumps({"collection": "bad", "source_prefix": "c/", "destination_prefix": "victim"}).encode(), "under"),
        (json.dumps({"collection": "bad", "source_prefix": "c/", "destination_prefix": "../../m"}).encode(), ".."),
    ],
)
def test_a_bad_task_file_ends_as_a_failed_collection_with_its_reason(cloud, body, reason):
    cloud.upload("c/A/1.jpg", photo(64, 48))
    cloud.events()  # the image's own event is not what this test is about
    document = _run(cloud, body)
    assert document["status"] == "failed" and reason in document["error"]
    assert not cloud.tiles("victim/") and not cloud.tiles("collections/") and not cloud.tiles("m/")


def test_a_task_cannot_overwrite_another_images_manifest(cloud):
    cloud.upload("victim/item1/manifest.json", b'{"original": true}')  # stands in for a published manifest
    cloud.s3.put_object(Bucket=cloud.settings.tiles_bucket, Key="victim/item1/manifest.json", Body=b"{}")
    cloud.upload("c/item1/1.jpg", photo(64, 48))
    cloud.events()
    task = {"collection": "bad", "source_prefix": "c/", "destination_prefix": "victim"}
    document = _run(cloud, json.dumps(task).encode())
    assert document["status"] == "failed"
    assert cloud.read(cloud.settings.tiles_bucket, "victim/item1/manifest.json") == b"{}"


def test_a_task_file_deleted_before_it_is_read_fails_without_a_retry(cloud):
    document = runner.start(SourceRef(cloud.settings.source_bucket, "tasks/bad.json", "etag", 10), cloud.settings)
    assert document["status"] == "failed" and "deleted" in document["error"]
