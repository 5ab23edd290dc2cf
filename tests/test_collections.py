"""Collections: task files (native and AWS Batch IIIF generator), CSV titles, multi-canvas manifests."""

import json
import time

import jsonschema
import pytest

from app.collection.plan import described
from app.collection.task import TaskError, group_items, page_label, parse_task
from tests.helpers import SHARED, photo

GENERATOR_TASK = {
    "jobName": "job1",
    "jobQueue": "iiifjq",
    "jobDefinition": "iiifjd:3",
    "command": "./createiiif.sh",
    "environment": [
        {"name": "AWS_REGION", "value": "us-east-1"},
        {"name": "SRC_BUCKET", "value": "tiler-source"},
        {"name": "AWS_BUCKET_NAME", "value": "target"},
        {"name": "CSV_NAME", "value": "Ms2016_012_Box2.csv"},
        {"name": "ACCESS_DIR", "value": "Women_of_Design/Ms2016_012/Box2/"},
        {"name": "CSV_PATH", "value": "Women_of_Design/Ms2016_012/CSV/"},
        {"name": "DEST_BUCKET", "value": "iiifs3"},
        {"name": "DEST_URL", "value": "https://s3.amazonaws.com/iawa-target-data"},
        {"name": "UPLOAD_BOOL", "value": "false"},
    ],
}


def test_the_batch_iiif_generators_task_files_are_accepted_unchanged():
    task = parse_task(GENERATOR_TASK)
    assert (task.collection, task.source_prefix, task.csv_key) == (
        "Ms2016_012",
        "Women_of_Design/Ms2016_012/Box2/",
        "Women_of_Design/Ms2016_012/CSV/Ms2016_012_Box2.csv",
    )
    assert (task.destination_prefix, task.public_base_url, task.source_bucket) == (
        "collections/Ms2016_012",
        "https://s3.amazonaws.com/iawa-target-data",
        "tiler-source",
    )  # DEST_BUCKET unused


@pytest.mark.parametrize(
    "document,reason",
    [
        ([], "must be a JSON object"),
        ({"collection": "c"}, "lacks source_prefix"),
        ({"source_prefix": "x/"}, "lacks collection"),
        ({"collection": "a b", "source_prefix": "x/"}, "use letters"),
    ],
)
def test_bad_task_files_are_refused_with_a_reason(document, reason):
    with pytest.raises(TaskError, match=reason):
        parse_task(document)


def test_items_are_folders_in_file_name_order_and_csv_gives_titles():
    task = parse_task({"collection": "c", "source_prefix": "c/"})
    items = group_items(
        task,
        [
            "c/Box1/Access/Box1_010.tif",
            "c/Box1/Access/Box1_002.jp2",
            "c/Box2/p_1.jpg",
            "c/items.csv",
            "c/Box2/notes.txt",
        ],
    )
    assert [(i.identifier, i.image_keys) for i in items] == [
        ("Box1", ("c/Box1/Access/Box1_002.jp2", "c/Box1/Access/Box1_010.tif")),
        ("Box2", ("c/Box2/p_1.jpg",)),
    ]
    titled = described(
        items, '\ufeffIdentifier,Title,Description\nBox1,Letters,"Correspondence, 1970s"\n\n', *[None] * 3
    )
    assert titled[0]["properties"] == {
        "label": {"none": ["Letters"]},
        "summary": {"none": ["Correspondence, 1970s"]},
        "metadata": [],
    }
    assert titled[1]["properties"] == {}
    assert [page["label"] for page in titled[0]["pages"]] == ["Page 2", "Page 10"]
    assert page_label("c/Box3/cover.jpg", 1) == "Page 1"


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "empty"),
        ("name,caption\nBox1,x\n", "must name an identifier column"),
        ("identifier,title\nBox9,x\n", "identifier 'Box9', which has no images"),
        ("identifier,title\nBox1,x,extra\n", "line 2 has 3 fields"),
        ('identifier,title\n"Box1,x\n', "malformed"),
    ],
)
def test_bad_csvs_are_refused_with_a_reason(text, reason):
    items = group_items(parse_task({"collection": "c", "source_prefix": "c/"}), ["c/Box1/a.jpg"])
    with pytest.raises(TaskError, match=reason):
        described(items, text, None, None, None)


# Through the S3 endpoint, with events flowing as in a deployment -------------------------------------------


def _validator():
    schema_path = SHARED / "iiif-presentation-schema" / "iiif_3_0.json"
    if not schema_path.exists():
        pytest.skip(f"the IIIF Presentation 3 schema is not at {schema_path} (../shared is absent)")
    schema = json.loads(schema_path.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _collection(cloud, name):
    body = cloud.s3.get_object(Bucket="tiler-metadata", Key=f"collections/{name}.json")["Body"]
    return json.loads(body.read())


def _wait(cloud, name, timeout=240, task_etag=None):
    """The collection record once final (for the run of the task file with ``task_etag``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f"collections/{name}.json" in cloud.keys("tiler-metadata", "collections/"):
            document = _collection(cloud, name)
            this_run = task_etag is None or document["task_source"]["etag"] == task_etag
            if this_run and document["status"] in ("done", "failed"):
                return document
        time.sleep(0.5)
    raise AssertionError(f"collection {name} did not finish in {timeout}s")


@pytest.fixture
def flowing(cloud):
    cloud.stack.start()
    yield cloud
    cloud.stack.stop()


def _task(cloud, name, **fields):
    return cloud.upload(f"tasks/{name}.json", json.dumps({"collection": name, **fields}).encode())


def test_a_task_publishes_item_manifests_and_a_collection(flowing):
    cloud, validator = flowing, _validator()
    for box, pages in (("Box1", 3), ("Box2", 1)):
        for page in range(pages, 0, -1):
            cloud.upload(f"Ms2016_012/{box}/Access/{box}_{page:03}.jpg", photo(200 + page, 150))
    cloud.upload("Ms2016_012/items.csv", b"identifier,title,description\nBox1,Letters,Correspondence\n")
    _task(
        cloud,
        "Ms2016_012",
        label="Women's Development Corporation",
        source_prefix="Ms2016_012/",
        csv="Ms2016_012/items.csv",
    )

    document = _wait(cloud, "Ms2016_012")
    assert document["status"] == "done" and document["progress"] == {"done": 4, "total": 4}
    collection = json.loads(cloud.read("tiler-tiles", "collections/Ms2016_012/collection.json"))
    assert list(validator.iter_errors(collection)) == []
    assert collection["label"] == {"none": ["Women's Development Corporation"]}
    assert [(m["id"].rsplit("/", 2)[-2], m["label"]["none"][0]) for m in collection["items"]] == [
        ("Box1", "Letters"),
        ("Box2", "Box2"),
    ]
    box1 = json.loads(cloud.read("tiler-tiles", "collections/Ms2016_012/Box1/manifest.json"))
    assert list(validator.iter_errors(box1)) == []
    assert box1["summary"] == {"none": ["Correspondence"]}
    assert [c["label"]["none"][0] for c in box1["items"]] == ["Page 1", "Page 2", "Page 3"]
    assert [c["width"] for c in box1["items"]] == [201, 202, 203]  # file-name order, real sizes
    service = box1["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    assert service == f"{cloud.url}/tiler-tiles/Ms2016_012/Box1/Access/Box1_001"

    images = [key[len("jobs/") : -len(".json")] for key in cloud.keys("tiler-metadata", "jobs/Ms2016_012/")]
    converted = {i: cloud.record(i)["updated_at"] for i in images}
    assert len(converted) == 4
    etag = _task(cloud, "Ms2016_012", label="Renamed", source_prefix="Ms2016_012/", csv="Ms2016_012/items.csv")
    again = _wait(cloud, "Ms2016_012", task_etag=etag)
    assert again["status"] == "done" and again["task"]["label"] == "Renamed"
    assert {i: cloud.record(i)["updated_at"] for i in images} == converted  # nothing re-tiled
    assert json.loads(cloud.read("tiler-tiles", "collections/Ms2016_012/collection.json"))["label"] == {
        "none": ["Renamed"]
    }

    cloud.upload("Ms2016_012/Box2/Access/Box2_001.jpg", photo(333, 150))  # a changed image is re-tiled
    etag = _task(cloud, "Ms2016_012", source_prefix="Ms2016_012/", csv="Ms2016_012/items.csv")
    third = _wait(cloud, "Ms2016_012", task_etag=etag)
    changed = "Ms2016_012/Box2/Access/Box2_001"
    assert third["status"] == "done" and cloud.record(changed)["updated_at"] != converted[changed]
    box2 = json.loads(cloud.read("tiler-tiles", "collections/Ms2016_012/Box2/manifest.json"))
    assert box2["items"][0]["width"] == 333


@pytest.mark.parametrize(
    "files,fields,reason",
    [
        ({}, {"source_prefix": "empty/"}, "no images under"),
        (
            {"c/A/1.jpg": None, "c/items.csv": b"identifier,title\nZ,x\n"},
            {"source_prefix": "c/", "csv": "c/items.csv"},
            "identifier 'Z', which has no images",
        ),
        ({"c/A/1.jpg": None}, {"source_prefix": "c/", "csv": "c/missing.csv"}, "does not exist"),
        ({}, {"source_prefix": "c/", "source_bucket": "elsewhere"}, "images must be in"),
    ],
)
def test_a_bad_task_fails_with_its_reason_and_publishes_nothing(cloud, files, fields, reason):
    from app.events import handle_s3_event

    for key, body in files.items():
        cloud.upload(key, body or photo(64, 48))
    _task(cloud, "bad", **fields)
    for event in cloud.events():
        handle_s3_event(event)
    document = _collection(cloud, "bad")
    assert document["status"] == "failed" and reason in document["error"]
    assert not cloud.tiles("collections/")


def test_a_failed_image_is_listed_and_the_collection_is_not_published_as_complete(flowing):
    cloud = flowing
    cloud.upload("mixed/A/1.jpg", photo(120, 90))
    cloud.upload("mixed/B/1.jpg", b"not really a jpeg")
    _task(cloud, "mixed", source_prefix="mixed/")
    document = _wait(cloud, "mixed")
    assert document["status"] == "failed" and document["progress"] == {"done": 1, "total": 2}
    assert [(f["id"], f["status"]) for f in document["failures"]] == [("mixed/B/1", "failed")]
    assert cloud.tiles("collections/mixed/") == {"collections/mixed/A/manifest.json"}


def test_a_collection_of_100_images_accounts_for_every_image(flowing):
    """End to end through the event pump and real conversions (the request counts at scale: test_collection_scale)."""
    cloud = flowing
    for number in range(100):
        cloud.upload(f"big-run/{number // 10:02}/{number:03}.png", photo(48 + number % 7, 40), ".png")
    _task(cloud, "big-run", source_prefix="big-run/")
    document = _wait(cloud, "big-run", timeout=600)
    assert document["status"] == "done" and document["progress"] == {"done": 100, "total": 100}
    collection = json.loads(cloud.read("tiler-tiles", "collections/big-run/collection.json"))
    assert len(collection["items"]) == 10
    assert (
        sum(
            len(json.loads(cloud.read("tiler-tiles", f"collections/big-run/{n:02}/manifest.json"))["items"])
            for n in range(10)
        )
        == 100
    )
