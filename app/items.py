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

from botocore.exceptions import BotoCoreError, ClientError

from app import cdn, records, takedown
from app.ids import PAGES_PREFIX, page_id, page_key, page_of, version_of
from app.iiif import grid
from app.model import SourceRef, Status
from app.pipeline.manifest import document_manifest
from app.pipeline.pages import Document, split
from app.records import Journal
from app.storage.s3 import PreconditionFailed, S3Storage, thread_pool
from config import Settings

log = logging.getLogger(__name__)


def start(
    journal: Journal,
    store: S3Storage,
    ref: SourceRef,
    source: Path,
    document: Document,
    item_id: str,
    settings: Settings,
    work: Path,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """Split the document, record the item, then send its pages on their way; returns the item's record.

    What an earlier version published and this one will not (pages past the new last one, or the image the
    source was before it had pages) is noted in ``retire`` and deleted once the new manifest is published.
    """
    version = version_of(ref.etag)
    files = split(source, document, work / "pages")
    keys = [
        page_key(item_id, page.number, version, file.suffix) for page, file in zip(document.pages, files, strict=True)
    ]
    stale = [
        key
        for key in store.list_keys(settings.source_bucket, f"{PAGES_PREFIX}{item_id}/")
        if key not in keys and (page_of(key) or ("",))[0] == item_id
    ]  # not a nested item's pages
    store.delete_keys(settings.source_bucket, stale)  # an earlier version's pages: their jobs end as gone
    record = journal.save(
        status=Status.PAGES,
        kind="item",
        version=version,
        error=None,
        document={
            "format": document.format,
            "title": document.title,
            "summary": document.summary,
            "creator": document.creator,
            "name": PurePosixPath(ref.key).name,
        },
        pages=[
            {
                "id": page_id(item_id, page.number),
                "label": page.label,
                "key": key,
                "status": Status.QUEUED,
                "error": None,
            }
            for page, key in zip(document.pages, keys, strict=True)
        ],
        progress={"phase": "pages", "done": 0, "total": len(keys)},
        retire=_retired(previous, len(keys)),
    )
    store.put_sources(settings.source_bucket, zip(files, keys, strict=True))
    log.info("%s: %d pages sent for conversion", item_id, len(keys))
    return record


def page_finished(record: dict[str, Any], settings: Settings, key: str) -> None:
    """Tick a finished page off its item; the page that completes the item publishes it.

    A failed item still hears from its pages: when a failed page is retried (the dashboard's retry) and
    converts, the item is completed and published then. ``key`` is the page source the job was for: a page
    identical to one of an earlier version is not converted again, and its record names the earlier key.
    """
    found = page_of(key)
    if not found or record["status"] not in Status.FINAL:
        return
    item_id, number, version = found
    store = S3Storage(settings.upload_workers)
    for _ in range(50):
        held = store.get_json(settings.metadata_bucket, records.record_key(item_id))
        if not held or held[0].get("status") not in (Status.PAGES, Status.FAILED) or held[0].get("version") != version:
            return  # published already, or a newer version of the document is on its way
        item, etag = held
        was = item["status"]
        item["pages"][number - 1].update(
            status=record["status"], error=record.get("error"), thumbnail=record.get("thumbnail")
        )
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
        item.update(
            status=Status.FAILED,
            error=f"{len(failed)} of {len(item['pages'])} pages failed, so the item "
            f"is not published; page {first['label']}: {first['error'] or first['status']}",
        )
        return
    page_records = list(
        thread_pool(store.workers).map(
            lambda page: records.read_record(store, settings.metadata_bucket, page["id"]), item["pages"]
        )
    )
    document = item["document"]
    manifest = document_manifest(
        settings.public_base_url.rstrip("/"),
        item_id,
        document.get("title") or PurePosixPath(document["name"]).stem,
        [
            (page["id"], page["label"], found["facts"]["width"], found["facts"]["height"])
            for page, found in zip(item["pages"], page_records, strict=True)
        ],
        settings.iiif_max_size,
        document.get("summary"),
        document.get("creator"),
        {page["id"]: found.get("iiif_versions", (3,)) for page, found in zip(item["pages"], page_records, strict=True)},
    )
    store.put_bytes(settings.tiles_bucket, f"{item_id}/manifest.json", json.dumps(manifest).encode())
    first = page_records[0]["facts"]
    width, height = grid.thumbnail_size(first["width"], first["height"], settings.iiif_max_size)
    item.update(
        status=Status.DONE,
        error=None,
        manifest=True,
        thumbnail=f"{PurePosixPath(item['pages'][0]['id']).name}/full/{width},{height}/0/default.jpg",
        iiif_versions=page_records[0].get("iiif_versions", [3]),  # which names the thumbnails have
    )
    _retire(store, settings, item_id, item.pop("retire", None) or {})
    if item.get("replaces") and settings.cdn_distribution_id:
        _invalidate(settings.cdn_distribution_id, item_id, item["source"]["etag"])


def _invalidate(distribution_id: str, item_id: str, etag: str) -> None:
    """The edge may hold the replaced manifest and what was retired (all under ITEM/): drop them, best effort."""
    try:
        cdn.invalidate(distribution_id, item_id, etag)
    except (BotoCoreError, ClientError) as error:
        log.warning(
            "could not invalidate the replaced item %s in CloudFront (%s): aws cloudfront "
            "create-invalidation --distribution-id %s --paths %s",
            item_id,
            error,
            distribution_id,
            " ".join(cdn.paths(item_id)),
        )


def _retired(previous: dict[str, Any] | None, pages: int) -> dict[str, Any]:
    """What an earlier version of the source published that this one replaces without overwriting."""
    if not previous:
        return {}
    if previous.get("kind") != "item":
        return {"image": bool(previous.get("facts"))}
    earlier = previous.get("retire") or {}
    ids = set(earlier.get("pages", [])) | {page["id"] for page in previous.get("pages", [])}
    return {"image": earlier.get("image", False), "pages": sorted(i for i in ids if _number(i) > pages)}


def _number(page: str) -> int:
    return int(page.rsplit("/p", 1)[1])


def _retire(store: S3Storage, settings: Settings, item_id: str, retire: dict[str, Any]) -> None:
    """Delete the stale outputs ``_retired`` listed, now that the new manifest no longer points at them."""
    if retire.get("image"):  # the single image the source was before: all of it but the item's new manifest
        takedown.prune(store, settings.tiles_bucket, item_id, keep={f"{item_id}/manifest.json"})
    for page in retire.get("pages", []):
        takedown.retire(store, settings, page)
