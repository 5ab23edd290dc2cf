"""A withdrawn image leaves its collections: item manifests and the Collection published again without it, and no
later run of the task paints it again. On the endpoint over HTTP, events pumped as Lambda would receive them."""

from __future__ import annotations

import json
import threading

import pytest

from app import takedown
from app.collection import plan, runner, withdrawal
from app.events import SUBSCRIBERS, handle_s3_event
from app.model import Status
from tests.helpers import photo

PAGES = {"A": 3, "B": 1, "C": 2}  # item: pages


@pytest.fixture
def archive(cloud, monkeypatch):
    monkeypatch.setenv("SERVING_TIFF", "false")  # the conversions are not what these tests are about
    for item, pages in PAGES.items():
        for page in range(1, pages + 1):
            cloud.upload(f"wd/{item}/{item}_{page:03}.png", photo(40 + page, 32), ".png")
    cloud.events()
    return cloud


def _handle_all(cloud) -> None:
    pending = cloud.events()
    while pending:
        for event in pending:
            handle_s3_event(event)
        pending = cloud.events()


def _drop_task(cloud, **fields) -> dict:
    task = {"collection": "wd", "source_prefix": "wd/", **fields}
    cloud.upload("tasks/wd.json", json.dumps(task).encode())
    _handle_all(cloud)
    return json.loads(cloud.read(cloud.settings.metadata_bucket, "collections/wd.json"))


def _published(cloud) -> tuple[list[str], dict[str, list[str]]]:
    """The Collection's items (identifiers) and each item manifest's image services (image ids), from the JSON."""
    tiles = cloud.settings.tiles_bucket
    listing = json.loads(cloud.read(tiles, "collections/wd/collection.json"))
    items = [entry["id"].rsplit("/", 2)[-2] for entry in listing["items"]]
    services = {}
    for key in sorted(cloud.tiles("collections/wd/")):
        if key.endswith("/manifest.json"):
            manifest = json.loads(cloud.read(tiles, key))
            services[key.split("/")[2]] = [
                canvas["items"][0]["items"][0]["body"]["service"][0]["id"].split("/tiler-tiles/", 1)[1]
                for canvas in manifest["items"]
            ]
    return items, services


def test_a_withdrawn_image_leaves_its_collections_and_never_comes_back(archive):
    cloud = archive
    assert _drop_task(cloud, label="Archive")["status"] == Status.DONE
    assert _published(cloud) == (
        ["A", "B", "C"],
        {"A": ["wd/A/A_001", "wd/A/A_002", "wd/A/A_003"], "B": ["wd/B/B_001"], "C": ["wd/C/C_001", "wd/C/C_002"]},
    )

    cloud.s3.delete_object(Bucket=cloud.settings.source_bucket, Key="wd/A/A_002.png")  # ObjectRemoved
    _handle_all(cloud)
    assert cloud.record("wd/A/A_002")["status"] == Status.WITHDRAWN
    assert _published(cloud) == (
        ["A", "B", "C"],
        {"A": ["wd/A/A_001", "wd/A/A_003"], "B": ["wd/B/B_001"], "C": ["wd/C/C_001", "wd/C/C_002"]},
    )

    # withdrawn on the dashboard's path (the source stays): B had one page, so B leaves the Collection
    takedown.withdraw(cloud.settings, "wd/B/B_001", "registrar", "rights", "test:withdraw", SUBSCRIBERS)
    expected = (["A", "C"], {"A": ["wd/A/A_001", "wd/A/A_003"], "C": ["wd/C/C_001", "wd/C/C_002"]})
    assert _published(cloud) == expected
    document = json.loads(cloud.read(cloud.settings.metadata_bucket, "collections/wd.json"))
    assert document["withdrawn"] == ["wd/A/A_002", "wd/B/B_001"] and set(document["urls"]["manifests"]) == {"A", "C"}
    canvases = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/wd/A/manifest.json"))["items"]
    assert [canvas["id"].rsplit("/", 1)[1] for canvas in canvases] == ["1", "2"]  # renumbered, no gap

    with cloud.requests() as rerun:  # a new run: the kept source is listed, but neither sent nor painted
        again = _drop_task(cloud, label="Archive again")
    assert again["status"] == Status.DONE and again["progress"] == {"done": 4, "total": 4}  # B left out
    assert again["withdrawn"] == ["wd/B/B_001"]  # the deleted source is not even listed any more
    assert [path for method, path in rerun if method == "PUT" and path.startswith("/tiler-source/wd/")] == []
    assert _published(cloud) == expected
    assert cloud.record("wd/B/B_001")["status"] == Status.WITHDRAWN  # not converted again
    assert json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/wd/collection.json"))["label"] == {
        "none": ["Archive again"]
    }


def test_a_withdrawn_thumbnail_page_moves_the_thumbnail_and_other_collections_are_untouched(archive):
    cloud = archive
    cloud.upload("wd/items.csv", b"identifier,title,thumbnail\nC,Letters,2\n")
    cloud.upload("other/X/X_001.png", photo(50, 32), ".png")
    cloud.events()
    assert _drop_task(cloud, csv="wd/items.csv")["status"] == Status.DONE
    cloud.upload("tasks/other.json", json.dumps({"collection": "other", "source_prefix": "other/"}).encode())
    _handle_all(cloud)
    other = cloud.read(cloud.settings.tiles_bucket, "collections/other/collection.json")

    listening = threading.Event()  # set while the withdrawal's collection listener runs: what it costs

    def listened(record, settings, key):
        listening.set()
        try:
            withdrawal.image_withdrawn(record, settings, key)
        finally:
            listening.clear()

    listeners = [listened if listener is withdrawal.image_withdrawn else listener for listener in SUBSCRIBERS]
    with cloud.requests() as withdrawn, cloud.requests(when=listening.is_set) as cost:
        takedown.withdraw(cloud.settings, "wd/C/C_002", "registrar", "sensitivity", "test:withdraw", listeners)
    batch_reads = [path for method, path in cost if method == "GET" and "/collection-batches/" in path]
    record_reads = sorted(path for method, path in cost if method == "GET" and path.startswith("/tiler-metadata/jobs/"))
    assert len(batch_reads) == 1  # the membership shard named the batch: no batch is searched
    assert record_reads == ["/tiler-metadata/jobs/wd/C/C_001.json", "/tiler-metadata/jobs/wd/C/C_002.json"]
    assert len(cost) <= 20, cost  # a few requests, however many images the collections hold
    manifest = json.loads(cloud.read(cloud.settings.tiles_bucket, "collections/wd/C/manifest.json"))
    assert [c["width"] for c in manifest["items"]] == [41]
    assert "wd/C/C_001" in manifest["thumbnail"][0]["id"]  # the thumbnail page is gone: the first page shows
    assert cloud.read(cloud.settings.tiles_bucket, "collections/other/collection.json") == other
    assert not [path for method, path in withdrawn if method == "PUT" and "/collections/other/" in path]


def test_two_withdrawals_in_one_item_at_once_leave_neither_published(archive, monkeypatch):
    """The first pauses after reading the item's records, before writing its manifest, while the second runs to
    its end: the first's manifest is stale when written, and it must publish again."""
    cloud = archive
    assert _drop_task(cloud)["status"] == Status.DONE
    reached, release, publishing = threading.Event(), threading.Event(), runner.publish_item

    def pausing(store, settings, task, item):
        if threading.current_thread().name == "first" and not release.is_set():
            reached.set()
            assert release.wait(60)
        return publishing(store, settings, task, item)

    monkeypatch.setattr(runner, "publish_item", pausing)
    first = threading.Thread(
        name="first",
        target=takedown.withdraw,
        args=(cloud.settings, "wd/A/A_001", "registrar", "rights", "test:first", SUBSCRIBERS),
    )
    first.start()
    assert reached.wait(60)
    takedown.withdraw(cloud.settings, "wd/A/A_003", "registrar", "rights", "test:second", SUBSCRIBERS)
    assert _published(cloud)[1]["A"] == ["wd/A/A_002"]  # the second saw both withdrawals
    release.set()
    first.join(60)
    assert not first.is_alive()
    assert _published(cloud) == (
        ["A", "B", "C"],
        {"A": ["wd/A/A_002"], "B": ["wd/B/B_001"], "C": ["wd/C/C_001", "wd/C/C_002"]},
    )


def test_a_withdrawn_page_of_an_item_split_over_batches_leaves_it(cloud, monkeypatch):
    monkeypatch.setattr(plan, "BATCH_IMAGES", 2)
    monkeypatch.setenv("SERVING_TIFF", "false")
    for page in range(1, 6):
        cloud.upload(f"wd/Long/Long_{page:03}.png", photo(40 + page, 32), ".png")
    cloud.upload("wd/Short/Short_001.png", photo(40, 32), ".png")
    cloud.events()
    assert _drop_task(cloud)["status"] == Status.DONE
    cloud.s3.delete_object(Bucket=cloud.settings.source_bucket, Key="wd/Long/Long_004.png")
    _handle_all(cloud)
    expected = (
        ["Long", "Short"],
        {"Long": [f"wd/Long/Long_00{n}" for n in (1, 2, 3, 5)], "Short": ["wd/Short/Short_001"]},
    )
    assert _published(cloud) == expected
    takedown.withdraw(cloud.settings, "wd/Short/Short_001", "registrar", "rights", "test:withdraw", SUBSCRIBERS)
    assert _published(cloud) == (["Long"], {"Long": expected[1]["Long"]})


def test_an_image_withdrawn_while_the_collection_is_assembled_is_left_out(archive, monkeypatch):
    """The assembly pauses after reading the batch summaries, before writing the Collection; an image is withdrawn
    then, and its listener finds the run unfinished: the assembly must notice and assemble again."""
    cloud = archive
    reached, release, publishing = threading.Event(), threading.Event(), runner.publish_collection

    def pausing(store, settings, task, items, document):
        if threading.current_thread().name == "assembly" and not release.is_set():
            reached.set()
            assert release.wait(60)
        return publishing(store, settings, task, items, document)

    monkeypatch.setattr(runner, "publish_collection", pausing)
    cloud.upload("tasks/wd.json", json.dumps({"collection": "wd", "source_prefix": "wd/"}).encode())
    assembly = threading.Thread(name="assembly", target=_handle_all, args=(cloud,))
    assembly.start()
    assert reached.wait(120)
    takedown.withdraw(cloud.settings, "wd/B/B_001", "registrar", "rights", "test:withdraw", SUBSCRIBERS)
    release.set()
    assembly.join(120)
    assert not assembly.is_alive()
    document = json.loads(cloud.read(cloud.settings.metadata_bucket, "collections/wd.json"))
    assert document["status"] == Status.DONE and document["withdrawn"] == ["wd/B/B_001"]
    assert _published(cloud) == (
        ["A", "C"],
        {"A": ["wd/A/A_001", "wd/A/A_002", "wd/A/A_003"], "C": ["wd/C/C_001", "wd/C/C_002"]},
    )
