"""A withdrawn image leaves its collections: their manifests and Collection published again without it.

Finding them is cheap whatever the collections' size: there are few
collections (one LIST of ``collections/`` and a GET of each record), a
collection holds only images under its task's ``source_prefix``, and its
current run's membership shard (``collection-runs/C/RUN/members/``, written
at its start, one per batch) says with one GET whether, and in which batch,
the run holds the image. Nothing is read from the source, which an
ObjectRemoved event has already deleted, and images that are not withdrawn
cost nothing here.

Publishing again uses the run's own code: the item is read from its batch
document(s), its pages' job records say which are withdrawn (``with_facts``
keeps them marked), ``publish_item`` writes the manifest without them (or
deletes it when no page is left) and ``publish_collection`` lists the items
that still have a manifest. The batch summary notes the item's new state with
a conditional write, so a later assembly and later withdrawals build on it.

Two withdrawals in one collection may run at once: each first registers its
image in the run's ``withdrawn.json`` (a conditional write: its ETag is a
generation), then publishes from what it reads, and publishes again if the
generation moved meanwhile; the one that registered last read every withdrawn
record, so whatever is written last is never stale.
"""

from __future__ import annotations

import logging
from typing import Any

from app import records
from app.collection import runner
from app.collection.task import Task
from app.ids import PAGES_PREFIX
from app.model import Status
from app.storage.s3 import PreconditionFailed, S3Storage
from config import Settings

log = logging.getLogger(__name__)


def image_withdrawn(record: dict[str, Any], settings: Settings, key: str) -> None:
    """A listener: every collection whose current run holds the withdrawn image is published again without it."""
    if record.get("status") != Status.WITHDRAWN or key.startswith(PAGES_PREFIX):
        return
    store = S3Storage(settings.upload_workers)
    for collection in _collections_of(store, settings, key):
        shard = runner.member_shard(record["id"], collection["batches"])
        found = store.get_json(settings.metadata_bucket, f"{_prefix(collection)}{shard}")
        number = found[0].get(record["id"]) if found else None
        if number is not None:
            _republish(store, settings, collection, number, record["id"])


def _collections_of(store: S3Storage, settings: Settings, key: str) -> list[dict[str, Any]]:
    """The records of the collections whose task takes images from a prefix ``key`` is under."""
    keys = [k for k in store.list_keys(settings.metadata_bucket, runner.COLLECTIONS_PREFIX) if k.endswith(".json")]
    found = runner.parallel(store, lambda k: store.get_json(settings.metadata_bucket, k), keys)
    return [
        document
        for document, _ in filter(None, found)
        if document.get("task") and document.get("run") and key.startswith(document["task"]["source_prefix"])
    ]


def _prefix(collection: dict[str, Any]) -> str:
    return f"{runner.RUNS_PREFIX}{collection['id']}/{collection['run']}/"


def _republish(store: S3Storage, settings: Settings, collection: dict[str, Any], number: int, image_id: str) -> None:
    """Publish the image's item and the Collection again, until no other withdrawal registered meanwhile."""
    generation_key = f"{_prefix(collection)}{runner.WITHDRAWN}"
    _register(store, settings, generation_key, image_id)
    item = _item(store, settings, collection, number, image_id)
    if item is None:
        return
    while True:
        generation = runner.withdrawal_generation(store, settings, _prefix(collection))
        moved = _publish_again(store, settings, collection, item, image_id)
        if runner.withdrawal_generation(store, settings, _prefix(collection)) == (moved or generation):
            log.info("collection %s published again without %s", collection["id"], image_id)
            return


def _register(store: S3Storage, settings: Settings, key: str, image_id: str) -> str:
    """Add the image to the run's withdrawn list, moving its generation (returned)."""
    while True:
        found = store.get_json(settings.metadata_bucket, key)
        ids = sorted({*(found[0]["ids"] if found else ()), image_id})
        try:
            if found:
                return store.put_json(settings.metadata_bucket, key, {"ids": ids}, if_match=found[1])
            return store.put_json(settings.metadata_bucket, key, {"ids": ids}, create_only=True)
        except PreconditionFailed:
            continue  # another withdrawal registered first: add ours to its list


def _item(
    store: S3Storage, settings: Settings, collection: dict[str, Any], number: int, image_id: str
) -> dict[str, Any] | None:
    """The item holding the image, whole: an item split over several batches is in consecutive ones."""

    def items_of(batch: int) -> list[dict[str, Any]]:
        found = store.get_json(settings.source_bucket, runner.batch_key(collection["id"], collection["run"], batch))
        return found[0]["items"] if found else []

    item = next((i for i in items_of(number) if any(page["id"] == image_id for page in i["pages"])), None)
    if item is None or item["part"][1] == 1:
        return item
    first = number - item["part"][0]
    parts = [items_of(batch)[0] for batch in range(first, first + item["part"][1])]
    return {**parts[0], "pages": [page for part in parts for page in part["pages"]]}


def _publish_again(
    store: S3Storage, settings: Settings, collection: dict[str, Any], item: dict[str, Any], image_id: str
) -> str | None:
    """The item from its pages' records now; the Collection if the run published one. Returns the generation
    it moved itself to, if it left the Collection to an assembly still to come."""
    found = runner.parallel(
        store, lambda p: records.read_record(store, settings.metadata_bucket, p["id"]), item["pages"]
    )
    joined = runner.with_facts(item, {page["id"]: r for page, r in zip(item["pages"], found, strict=True)}, _scratch())
    if joined is None:
        return  # a page failed or converts again: the item has no manifest to correct, its run decides
    task = Task(**collection["task"])
    url = runner.publish_item(store, settings, task, joined)[1]
    prefix = _prefix(collection)
    keys = sorted(store.list_keys(settings.metadata_bucket, f"{prefix}batches/"))
    withdrawn = {page["id"] for page in joined["pages"] if page.get("withdrawn")}
    entries = _note(store, settings, keys, item["identifier"], url is None, withdrawn)
    document = store.get_json(settings.metadata_bucket, runner.collection_key(collection["id"]))
    if document is None or document[0].get("run") != collection["run"] or document[0]["status"] != Status.DONE:
        # the run's assembly (to come, or running now) or its failure decides about the Collection: moving the
        # generation after the note makes an assembly that read the summaries before it assemble again
        return _register(store, settings, f"{prefix}{runner.WITHDRAWN}", image_id)
    record = document[0]
    items = [{**entry, "manifest": runner.manifest_url(settings, task, entry["identifier"])} for entry in entries]
    runner.publish_collection(store, settings, task, items, record)
    found = store.get_json(settings.metadata_bucket, f"{prefix}{runner.WITHDRAWN}")[0]["ids"]
    ids = sorted({*record.get("withdrawn", ()), *found})
    record.update(withdrawn=ids[: runner.SHOWN], withdrawn_total=len(ids), updated_at=records.now_iso())
    store.put_json(settings.metadata_bucket, runner.collection_key(collection["id"]), record)


def _note(
    store: S3Storage, settings: Settings, keys: list[str], identifier: str, dropped: bool, withdrawn: set[str]
) -> list[dict[str, Any]]:
    """Note in the summaries that hold the item whether it dropped out and which of its pages are withdrawn (an
    assembly still to come joins a split item from them), by conditional writes: summaries are shared by
    withdrawals at once. Returns the entries of every item still in the Collection, in order."""
    entries = []
    for key in keys:
        while True:
            summary, etag = store.get_json(settings.metadata_bucket, key)
            entry = next((e for e in summary["items"] if e["identifier"] == identifier), None)
            part = (summary["parts"].get(identifier) or {}).get("item")
            stale = [p for p in (part or {}).get("pages", ()) if p["id"] in withdrawn and not p.get("withdrawn")]
            if (entry is None or entry.get("withdrawn", False) == dropped) and not stale:
                break
            if entry is not None:
                entry["withdrawn"] = dropped
            for page in stale:
                page["withdrawn"] = True
            try:
                store.put_json(settings.metadata_bucket, key, summary, if_match=etag)
                break
            except PreconditionFailed:
                continue
        entries += [entry for entry in summary["items"] if not entry.get("withdrawn")]
    return entries


def _scratch() -> dict[str, Any]:
    return {"items": [], "failures": [], "done": 0, "parts": {}}
