"""Event records and task files are untrusted: each record is checked on its own, and no input, however malformed,
meets an exception the project has not classified."""

import copy
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.collection.plan import described
from app.collection.task import COLLECTIONS_ROOT, TaskError, group_items, parse_task
from app.events import UnroutableRecord, _routed, handle_s3_event
from app.model import SourceRef
from config import Settings
from tests.helpers import photo

SETTINGS = Settings.from_env({"SOURCE_BUCKET": "tiler-source"})


def _record(key="a.jpg", bucket="tiler-source"):
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": "abc", "size": 10}},
    }


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda r: r["s3"].pop("object"), "s3.object.key must be a non-empty string"),
        (lambda r: r["s3"]["bucket"].update(name=7), "s3.bucket.name must be a non-empty string, not int"),
        (lambda r: r["s3"].update(bucket="tiler-source"), "s3.bucket.name"),
        (lambda r: r["s3"]["object"].update(key=["a.jpg"]), "s3.object.key"),
        (lambda r: r["s3"]["object"].update(size="10"), "size must be a whole number"),
        (lambda r: r["s3"]["object"].update(size=-1), "size must be a whole number"),
        (lambda r: r["s3"]["object"].update(eTag=5), "eTag must be a string"),
        (lambda r: r.update(eventName=None), "eventName must be a string"),
        (lambda r: r.update(s3=None), "s3.bucket.name"),
        (lambda r: r["s3"]["object"].update(key="a" * 1100 + ".jpg"), "not a key S3 could hold"),
    ],
)
def test_a_malformed_record_is_refused_with_its_reason_and_the_others_still_route(mutate, reason, caplog):
    bad = _record("b.jpg")
    mutate(bad)
    with caplog.at_level(logging.ERROR, logger="app.events"):
        deliveries, ignored, malformed = _routed({"Records": [_record("a.jpg"), bad, _record("c.jpg")]}, SETTINGS)
    assert [delivery.ref.key for delivery in deliveries] == ["a.jpg", "c.jpg"] and ignored == 0
    assert len(malformed) == 1 and reason in str(malformed[0])
    assert "event record 1 refused" in caplog.text and reason in caplog.text


@pytest.mark.parametrize("event", [None, [], "Records", {"Records": None}, {"Records": {"a": 1}}, {"Other": 1}])
def test_something_that_is_not_an_s3_event_is_refused(event):
    refs, ignored, malformed = _routed(event, SETTINGS)
    assert (refs, ignored) == ([], 0) and isinstance(malformed[0], UnroutableRecord)


def test_the_well_formed_records_beside_a_malformed_one_are_converted_first(cloud):
    cloud.upload("good.jpg", photo(64, 48))
    (event,) = cloud.events()
    broken = copy.deepcopy(event["Records"][0])
    broken["s3"]["object"]["size"] = "many"
    with pytest.raises(UnroutableRecord, match="size"):
        handle_s3_event({"Records": [broken, *event["Records"]]})
    assert cloud.record("good")["status"] == "done"


# Property-based: whatever arrives, the answer is a route, an ignore, or a classified refusal ------------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_key = st.text(max_size=40) | st.sampled_from(["a.jpg", "tasks/t.json", "x/info.json", "pages/x", "a%2F..%2Fb", ""])
_record_like = st.fixed_dictionaries(
    {},
    optional={
        "eventSource": st.sampled_from(["aws:s3", "aws:sqs"]) | _json,
        "eventName": st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"]) | _json,
        "s3": st.fixed_dictionaries(
            {},
            optional={
                "bucket": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["tiler-source", "x"]) | _json}),
                "object": st.fixed_dictionaries(
                    {}, optional={"key": _key | _json, "eTag": st.text(max_size=8) | _json, "size": _json}
                ),
            },
        )
        | _json,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record_like | _json, max_size=5) | _json)
def test_no_event_meets_an_unclassified_exception(records):
    event = {"Records": records} if isinstance(records, list) else records
    refs, ignored, malformed = _routed(event, SETTINGS)
    assert all(isinstance(error, UnroutableRecord) for error in malformed)
    assert all(isinstance(d.ref, SourceRef) and d.ref.bucket == "tiler-source" for d in refs)
    if isinstance(records, list):
        assert len(refs) + ignored + len(malformed) == len(records)


_path = st.text(alphabet="ab./\\:%- \x00\u00e9", max_size=12)
_task_like = st.fixed_dictionaries(
    {},
    optional={
        "collection": st.sampled_from(["c", "Ms2016_012", "../c"]) | _json,
        "label": _json,
        "source_prefix": _path | _json,
        "csv": _path | _json,
        "destination_prefix": st.sampled_from(["collections/c", "victim", "../../m"]) | _path | _json,
        "public_base_url": st.sampled_from(["https://t.example", "javascript:x"]) | _json,
        "source_bucket": _json,
        "environment": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["ACCESS_DIR", "CSV_NAME", "CSV_PATH"]), "value": _json})
            | _json,
            max_size=3,
        )
        | _json,
        "jobName": _json,
    },
)


@settings(max_examples=400, deadline=None)
@given(_task_like | _json, st.lists(_path, max_size=4), st.text(max_size=60))
def test_no_task_file_meets_an_unclassified_exception_or_escapes_its_roots(document, keys, csv_text):
    try:
        task = parse_task(document)
        items = group_items(task, [task.source_prefix + key for key in keys])
        described(items, csv_text, None, None, None)
    except TaskError:
        return
    assert task.destination_prefix.startswith(COLLECTIONS_ROOT + "/")
    for path in (task.destination_prefix, task.source_prefix, task.csv_key or ""):
        assert not path.startswith("/") and ".." not in path.split("/") and "://" not in path
    assert all(item.identifier not in (".", "..") and "/" not in item.identifier for item in items)


def test_a_task_file_through_the_handler_never_loops(cloud):
    """One example end to end: a task whose every field is the wrong type ends failed, and the handler returns."""
    cloud.upload("tasks/bad.json", json.dumps({"collection": "bad", "source_prefix": 5, "csv": 123}).encode())
    for event in cloud.events():
        assert handle_s3_event(event)["statuses"] == ["failed"]
