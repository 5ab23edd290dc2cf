"""Taking published objects down: what a new version no longer has (``prune``), and a whole image (``withdraw``).

Both find an image's objects by listing its prefixes and matching the exact
shapes of ``app.outputs``, not from what an earlier record remembers: a
version that failed, a first attempt that died mid-publish or an older
release's layout leave nothing behind that the next prune would not find.
Withdrawing takes the image's claim first, so it never races a conversion of
the same image; the record stays, marked ``withdrawn`` with who and when, so
a late duplicate of the version's event is recognised and not published again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app import cdn, outputs, records
from app.errors import TransientError
from app.ids import PAGES_PREFIX, page_of
from app.model import SourceRef, Status
from app.storage.s3 import S3Storage
from config import Settings

log = logging.getLogger(__name__)


class ImageBusy(TransientError):
    """A conversion of the image is running: the takedown is retried once it has ended (or stopped moving)."""


def published_keys(store: S3Storage, bucket: str, image_id: str) -> list[str]:
    """Every object of ``image_id`` in the tiles bucket, public and private, found by listing."""
    found = [
        key
        for prefix in outputs.tile_prefixes(image_id)
        for key in store.list_keys(bucket, prefix)
        if outputs.owned_tile_key(image_id, key)
    ]
    private = [key for key in outputs.private_keys(image_id) if store.exists(bucket, key)]
    return found + private + _oversized_answers(store, bucket, image_id)


def prune(store: S3Storage, bucket: str, image_id: str, keep: Iterable[str]) -> int:
    """Delete the image's objects that the version just published does not have; returns how many."""
    keep = set(keep)
    doomed = [key for key in published_keys(store, bucket, image_id) if key not in keep]
    store.delete_keys(bucket, doomed)
    if doomed:
        log.info("%s: removed %d objects the new version no longer has", image_id, len(doomed))
    return len(doomed)


def retire(store: S3Storage, settings: Settings, image_id: str) -> None:
    """Forget an image that is no longer anything's (a page past a shorter document's end): its objects, its
    metadata, its record. Unlike ``withdraw``, nothing stays to say it was there."""
    store.delete_keys(settings.tiles_bucket, published_keys(store, settings.tiles_bucket, image_id))
    old = records.read_record(store, settings.metadata_bucket, image_id)
    doomed = [records.record_key(image_id), outputs.metadata_key(image_id)]
    store.delete_keys(settings.metadata_bucket, doomed + ([records.index_key(old["status"], image_id)] if old else []))


def withdraw(
    settings: Settings,
    image_id: str,
    by: str,
    reason: str,
    owner: str,
    listeners: Sequence[Any] = (),
) -> dict[str, Any] | None:
    """Unpublish ``image_id`` everywhere and record it ``withdrawn``; returns the record (None: no such image).

    Raises ``ImageBusy`` while a conversion of the image runs: it re-checks its source when it ends.
    """
    store = S3Storage(settings.upload_workers)
    record = records.read_record(store, settings.metadata_bucket, image_id)
    if record is None or record["status"] == Status.WITHDRAWN:
        return record
    ref = SourceRef(**{name: record["source"].get(name) for name in ("bucket", "key", "etag", "size")})
    claimed = records.claim(
        store, settings.metadata_bucket, image_id, ref, owner, settings.stale_after_seconds, takedown=True
    )
    if claimed != records.Claim.OURS:
        raise ImageBusy(f"{image_id} is being converted; it will be withdrawn once that job ends")
    withdrawn = {"by": by, "at": records.now_iso(), "reason": reason}
    for page in record.get("pages") or ():  # a document: its pages are images of their own
        _unpublish(store, settings, page["id"], withdrawn)
    if record.get("kind") == "item":
        store.delete_keys(settings.source_bucket, page_sources(store, settings.source_bucket, image_id))
    final = _unpublish(store, settings, image_id, withdrawn, {**record, "owner": owner})  # the claim's, now
    _invalidate(settings, image_id, withdrawn["at"])
    log.info("withdrew %s (%s, by %s)", image_id, reason, by)
    for listener in listeners:
        listener(final, settings, ref.key)
    return final


def _unpublish(
    store: S3Storage, settings: Settings, image_id: str, withdrawn: dict[str, str], record: dict | None = None
) -> dict[str, Any] | None:
    """Delete every object of one image and mark its record withdrawn."""
    store.delete_keys(settings.tiles_bucket, published_keys(store, settings.tiles_bucket, image_id))
    store.delete_keys(settings.metadata_bucket, [outputs.metadata_key(image_id)])
    record = record or records.read_record(store, settings.metadata_bucket, image_id)
    if record is None:
        return None
    was = record["status"]
    record.update(
        status=Status.WITHDRAWN,
        withdrawn=withdrawn,
        published=None,
        error=None,
        finished_at=withdrawn["at"],
        updated_at=withdrawn["at"],
        progress={"phase": "withdrawn", "done": 0, "total": 0},
    )
    store.put_json(settings.metadata_bucket, records.record_key(image_id), record)
    records.move_index(store, settings.metadata_bucket, image_id, was, Status.WITHDRAWN)
    return record


def page_sources(store: S3Storage, bucket: str, item_id: str) -> list[str]:
    """The page sources the service split from the item's document (any version) in the source bucket."""
    return [
        key
        for key in store.list_keys(bucket, f"{PAGES_PREFIX}{item_id}/")
        if (page_of(key) or ("",))[0] == item_id  # not a nested item's pages
    ]


def _oversized_answers(store: S3Storage, bucket: str, image_id: str) -> list[str]:
    """The dynamic endpoint's stored answers for the image, for any published version."""
    prefix = outputs.stored_answer_prefix(image_id)
    return [key for key in store.list_keys(bucket, prefix) if outputs.owned_stored_answer(image_id, key)]


def _invalidate(settings: Settings, image_id: str, stamp: str) -> None:
    """The edge may still hold the image: drop it there too. Best effort, with the command to do it by hand."""
    if not settings.cdn_distribution_id:
        return
    try:
        cdn.invalidate(settings.cdn_distribution_id, image_id, f"withdrawn {stamp}")
    except (BotoCoreError, ClientError) as error:
        log.warning(
            "could not invalidate the withdrawn %s in CloudFront (%s): aws cloudfront create-invalidation "
            "--distribution-id %s --paths %s",
            image_id,
            error,
            settings.cdn_distribution_id,
            " ".join(cdn.paths(image_id)),
        )
