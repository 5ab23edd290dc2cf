"""Documents (a PDF, a multi-page TIFF) as items: one image per page, each through the normal per-image path.

The document's own job checks it from its headers, records the item (its job
record, status ``pages``, listing every page's id and label) and only then
uploads one source per page under ``pages/`` in the source bucket
(``ids.page_key``): S3 raises an event for each, so every page is a job of
its own, on Lambda or AWS Batch by its own size, in parallel. Each finished
page job ticks its page off with a conditional write, as collection images
do; the one that completes the set publishes ``ITEM/manifest.json`` (pages in
order, labelled, the first as thumbnail) and only then records the item
``done``. If a page fails, the item fails and no manifest is published. Page
keys carry the source version they were split from, so a page of an older
upload can never complete a newer item.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any

from app import records
from app.ids import PAGES_PREFIX, page_id, page_key, page_of, version_of
from app.model import SourceRef, Status
from app.pipeline import iiif
from app.pipeline.manifest import document_manifest
from app.pipeline.pages import Document, split
from app.records import Journal
from app.storage.s3 import PreconditionFailed, S3Storage, thread_pool
from config import Settings

log = logging.getLogger(__name__)


def start(journal: Journal, store: S3Storage, ref: SourceRef, source: Path, document: Document, item_id: str,
          settings: Settings, work: Path) -> dict[str, Any]:
    """Split the document, record the item, then send its pages on their way; returns the item's record."""
    version = version_of(ref.etag)
    files = split(source, document, work / "pages")
    keys = [page_key(item_id, page.number, version, file.suffix) for page, file in zip(document.pages, files,
                                                                                      strict=True)]
    stale = [key for key in store.list_keys(settings.source_bucket, f"{PAGES_PREFIX}{item_id}/")
             if key not in keys and (page_of(key) or ("",))[0] == item_id]  # not a nested item's pages
    store.delete_keys(settings.source_bucket, stale)  # an earlier version's pages: their jobs end as gone
    record = journal.save(
        status=Status.PAGES, kind="item", version=version, error=None,
        document={"format": document.format, "title": document.title, "summary": document.summary,
                  "creator": document.creator, "name": PurePosixPath(ref.key).name},
        pages=[{"id": page_id(item_id, page.number), "label": page.label, "key": key, "status": Status.QUEUED,
                "error": None} for page, key in zip(document.pages, keys, strict=True)],
        progress={"phase": "pages", "done": 0, "total": len(keys)})
    store.put_sources(settings.source_bucket, zip(files, keys, strict=True))
    log.info("%s: %d pages sent for conversion", item_id, len(keys))
    return record


def page_finished(record: dict[str, Any], settings: Settings) -> None:
    """Tick a finished page off its item; the page that completes the item publishes it.

    A failed item still hears from its pages: when a failed page is retried (the dashboard's retry) and
    converts, the item is completed and published then.
    """
    found = page_of(record["source"]["key"])
    if not found or record["status"] not in Status.FINAL:
        return
    item_id, number, version = found
    store = S3Storage(settings.upload_workers)
    for _ in range(50):
        held = store.get_json(settings.metadata_bucket, records.record_key(item_id))
        if held is None or held[0].get("status") not in (Status.PAGES, Status.FAILED) or held[0].get("version") != version:
            return  # published already, or a newer version of the document is on its way
        item, etag = held
        was = item["status"]
        item["pages"][number - 1].update(status=record["status"], error=record.get("error"))
        pages = item["pages"]
        done = sum(page["status"] == Status.DONE for page in pages)
        complete = all(page["status"] in Status.FINAL for page in pages)
        item.update(progress={"phase": "pages", "done": done, "total": len(pages)}, updated_at=records.now_iso())
        if complete:
            _finish(store, settings, item_id, item)
        try:
            store.put_json(settings.metadata_bucket, records.record_key(item_id), item, if_match=etag)
        except PreconditionFailed:
            continue  # another page finished at the same moment: read again
        if complete:
            records.move_index(store, settings.metadata_bucket, item_id, was, item["status"])
        return
    raise RuntimeError(f"item {item_id}: too many concurrent updates")


def _finish(store: S3Storage, settings: Settings, item_id: str, item: dict[str, Any]) -> None:
    """Publish the manifest when every page is done (idempotent: a retried tick writes the same bytes)."""
    failed = [page for page in item["pages"] if page["status"] != Status.DONE]
    item.update(finished_at=records.now_iso(), progress={**item["progress"], "phase": "done"})
    if failed:
        first = failed[0]
        item.update(status=Status.FAILED, error=f"{len(failed)} of {len(item['pages'])} pages failed, so the item "
                    f"is not published; page {first['label']}: {first['error'] or first['status']}")
        return
    page_records = list(thread_pool(store.workers).map(
        lambda page: records.read_record(store, settings.metadata_bucket, page["id"]), item["pages"]))
    document = item["document"]
    manifest = document_manifest(settings.public_base_url.rstrip("/"), item_id,
                                 document.get("title") or PurePosixPath(document["name"]).stem,
                                 [(page["id"], page["label"], found["facts"]["width"], found["facts"]["height"])
                                  for page, found in zip(item["pages"], page_records, strict=True)],
                                 settings.iiif_max_size, document.get("summary"), document.get("creator"))
    store.put_bytes(settings.tiles_bucket, f"{item_id}/manifest.json", json.dumps(manifest).encode())
    first = page_records[0]["facts"]
    width, height = iiif.thumbnail_size(first["width"], first["height"], settings.iiif_max_size)
    item.update(status=Status.DONE, error=None, manifest=True,
                thumbnail=f"{PurePosixPath(item['pages'][0]['id']).name}/full/{width},{height}/0/default.jpg")

