"""Collections on top of the per-image engine: every image converts through the normal event path.

A task file under ``tasks/`` in the source bucket starts a collection: the
task and its CSV are checked, the collection record ``collections/ID.json``
and a membership note per image (``members/IMAGE_ID.json``) are written, and
every image not already converted at its current version is sent through the
normal per-image path (copied onto itself, so S3 raises its event: one Lambda
invocation or Batch job each). Each finished image job ticks its collections
off with a conditional write; the job that completes the set publishes the
item manifests and the Collection. Unchanged images are never re-tiled.
"""

from __future__ import annotations

import json
import logging
from pathlib import PurePosixPath
from typing import Any

from app import records
from app.collection import manifests
from app.collection.task import (
    Item,
    Task,
    TaskError,
    apply_csv,
    group_items,
    parse_task,
)
from app.errors import SourceGone
from app.model import SourceRef, Status
from app.storage.s3 import PreconditionFailed, S3Storage
from config import Settings

log = logging.getLogger(__name__)

TASKS_PREFIX = "tasks/"
COLLECTIONS_PREFIX = "collections/"
MEMBERS_PREFIX = "members/"
PUBLISHING = "publishing"


def is_task_key(key: str) -> bool:
    return key.startswith(TASKS_PREFIX) and key.endswith(".json")


def collection_key(collection: str) -> str:
    return f"{COLLECTIONS_PREFIX}{collection}.json"


def start(ref: SourceRef, settings: Settings) -> dict[str, Any]:
    """A task file arrived: check it, record the collection, send unconverted images on their way."""
    store = S3Storage(settings.upload_workers)
    collection = PurePosixPath(ref.key).stem
    try:
        task = _read_task(store, ref, settings)
        collection = task.collection
        current = dict(store.list_objects(settings.source_bucket, task.source_prefix))
        items = group_items(task, list(current))
        if task.csv_key:
            items = apply_csv(items, _read_csv(store, settings, task.csv_key))
    except TaskError as error:
        document = _new_record(collection, ref, None, [], {})
        document.update(status=Status.FAILED, error=str(error))
        store.put_json(settings.metadata_bucket, collection_key(collection), document)
        return document
    images = {
        image_id: _image_entry(store, settings, image_id, key, current[key])
        for item in items
        for key, image_id in zip(item.image_keys, item.image_ids, strict=True)
    }
    for image_id in images:
        _join(store, settings, image_id, collection)
    document = _new_record(collection, ref, task, items, images)
    store.put_json(settings.metadata_bucket, collection_key(collection), document)
    pending = [entry["key"] for entry in images.values() if entry["status"] != Status.DONE]
    store.touch_many(settings.source_bucket, pending)
    log.info("collection %s: %d images, %d to convert", collection, len(images), len(pending))
    return document if pending else _tick(store, settings, collection, None, None)


def image_finished(record: dict[str, Any], settings: Settings) -> None:
    """Tick a finished image off every collection it belongs to; publish a collection it completes."""
    if record.get("status") not in Status.FINAL:
        return
    store = S3Storage(settings.upload_workers)
    found = store.get_json(settings.metadata_bucket, f"{MEMBERS_PREFIX}{record['id']}.json")
    for collection in found[0].get("collections", []) if found else []:
        _tick(store, settings, collection, record["id"], record)


def _tick(
    store: S3Storage, settings: Settings, collection: str, image_id: str | None, record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Record one image's outcome with a conditional write (retried on conflict); finish when all are in."""
    for _ in range(50):
        found = store.get_json(settings.metadata_bucket, collection_key(collection))
        if found is None or found[0]["status"] != Status.RUNNING:
            return found[0] if found else None
        document, etag = found
        entry = document["images"].get(image_id) if image_id else None
        if image_id and (entry is None or entry["etag"] != record["source"].get("etag")):
            return document  # not this version of the image: a newer one is on its way
        if entry is not None:
            entry.update(status=record["status"], error=record.get("error"))
        _summarise(document)
        complete = document["progress"]["done"] + len(document["failures"]) == document["progress"]["total"]
        if complete:
            document["status"] = PUBLISHING
        try:
            store.put_json(settings.metadata_bucket, collection_key(collection), document, if_match=etag)
        except PreconditionFailed:
            continue  # another image finished at the same moment: read again
        return _publish(store, settings, document) if complete else document
    raise RuntimeError(f"collection {collection}: too many concurrent updates")


def _publish(store: S3Storage, settings: Settings, document: dict[str, Any]) -> dict[str, Any]:
    """Write the manifests of complete items, and the Collection only if every item is complete."""
    task = Task(**document["task"])
    tiles_base = settings.public_base_url.rstrip("/")
    public = (task.public_base_url or settings.public_base_url).rstrip("/")
    images = {
        image_id: records.read_record(store, settings.metadata_bucket, image_id) for image_id in document["images"]
    }
    published = []
    for raw in document["items"]:
        item = Item(raw["identifier"], tuple(raw["image_keys"]), raw.get("title"), raw.get("description"))
        if all(images[i] and images[i]["status"] == Status.DONE for i in item.image_ids):
            key = f"{task.destination_prefix}/{item.identifier}/manifest.json"
            manifest = manifests.item_manifest(item, tiles_base, f"{public}/{key}", images, settings.iiif_max_size)
            store.put_bytes(settings.tiles_bucket, key, json.dumps(manifest).encode())
            published.append((item.identifier, f"{public}/{key}", item.title or item.identifier))
    status = Status.DONE if len(published) == len(document["items"]) else Status.FAILED
    urls = {"manifests": {identifier: url for identifier, url, _ in published}}
    if status == Status.DONE:
        key = f"{task.destination_prefix}/collection.json"
        listing = manifests.collection(task, f"{public}/{key}", [(url, label) for _, url, label in published])
        store.put_bytes(settings.tiles_bucket, key, json.dumps(listing).encode())
        urls["collection"] = f"{public}/{key}"
    document.update(
        status=status,
        urls=urls,
        updated_at=records.now_iso(),
        finished_at=records.now_iso(),
        error=None if status == Status.DONE else "some images failed: the Collection is not published",
    )
    store.put_json(settings.metadata_bucket, collection_key(task.collection), document)
    return document


def _read_task(store: S3Storage, ref: SourceRef, settings: Settings) -> Task:
    try:
        task = parse_task(json.loads(store.read_text(ref.bucket, ref.key)))
    except SourceGone:
        raise TaskError("the task file was deleted before it could be read") from None
    except UnicodeDecodeError:
        raise TaskError("the task file is not UTF-8 text (UTF-16 or Latin-1?): save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise TaskError(f"the task file is not valid JSON: {error}") from None
    except RecursionError:
        raise TaskError("the task file is nested too deeply") from None
    if task.source_bucket and task.source_bucket != settings.source_bucket:
        raise TaskError(f"the task names bucket {task.source_bucket!r}; images must be in {settings.source_bucket!r}")
    return task


def _read_csv(store: S3Storage, settings: Settings, key: str) -> str:
    try:
        return store.read_text(settings.source_bucket, key)
    except SourceGone:
        raise TaskError(f"the CSV s3://{settings.source_bucket}/{key} does not exist") from None
    except UnicodeDecodeError:
        raise TaskError("the CSV is not UTF-8 text") from None


def _image_entry(store: S3Storage, settings: Settings, image_id: str, key: str, etag: str) -> dict[str, Any]:
    record = records.read_record(store, settings.metadata_bucket, image_id)
    converted = record and record["status"] == Status.DONE and record["source"].get("etag") == etag
    return {"key": key, "etag": etag, "status": Status.DONE if converted else Status.QUEUED, "error": None}


def _join(store: S3Storage, settings: Settings, image_id: str, collection: str) -> None:
    key = f"{MEMBERS_PREFIX}{image_id}.json"
    found = store.get_json(settings.metadata_bucket, key)
    collections = sorted(set(found[0].get("collections", []) if found else []) | {collection})
    store.put_json(settings.metadata_bucket, key, {"collections": collections})


def _new_record(
    collection: str, ref: SourceRef, task: Task | None, items: list[Item], images: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    document = {
        "id": collection,
        "kind": "collection",
        "task_source": ref.to_dict(),
        "status": Status.RUNNING,
        "task": task.__dict__ if task else None,
        "error": None,
        "urls": {},
        "failures": [],
        "items": [
            {
                "identifier": i.identifier,
                "image_keys": list(i.image_keys),
                "title": i.title,
                "description": i.description,
            }
            for i in items
        ],
        "images": images,
        "created_at": records.now_iso(),
        "updated_at": records.now_iso(),
        "finished_at": None,
    }
    return _summarise(document)


def _summarise(document: dict[str, Any]) -> dict[str, Any]:
    images = document["images"]
    document["progress"] = {"done": sum(e["status"] == Status.DONE for e in images.values()), "total": len(images)}
    document["failures"] = [
        {"id": image_id, "key": e["key"], "status": e["status"], "error": e["error"]}
        for image_id, e in sorted(images.items())
        if e["status"] in (Status.FAILED, Status.GONE)
    ]
    document["updated_at"] = records.now_iso()
    return document
