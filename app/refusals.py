"""Keys that are not published, and why: bad keys (``ids.key_problem``) and keys whose id another key holds.

A refused key still gets a ``failed`` record, so nothing is dropped silently, under an id no other key has
(``ids.distinct_id``): the record of the key that holds the readable id is never touched.
"""

from __future__ import annotations

import logging
from typing import Any

from app import records
from app.ids import distinct_id, page_of
from app.model import SourceRef, Status
from app.records import Journal
from app.storage.s3 import S3Storage
from config import Settings

log = logging.getLogger(__name__)


def holder_of(store: S3Storage, previous: dict[str, Any] | None, current: SourceRef) -> str | None:
    """The other source key that holds the image id ``current`` would have (``x.jpg`` when ``x.png`` arrives);
    None when the id is free: unused, this key's, a newer version's page, or held by a key that is gone."""
    if not previous or previous["status"] in (Status.WITHDRAWN, Status.GONE):
        return None
    key = previous["source"].get("key")
    if not key or key == current.key or _same_page(key, current.key):
        return None
    return key if store.exists(current.bucket, key) else None


def refuse(
    store: S3Storage,
    settings: Settings,
    ref: SourceRef,
    route: str,
    owner: str,
    reason: str,
    conflict: str | None = None,
) -> dict[str, Any]:
    """Record ``ref`` as failed with ``reason`` (and the key holding its id, if that is why)."""
    log.warning("refused s3://%s/%s: %s", ref.bucket, ref.key, reason)
    image_id = distinct_id(ref.key)
    previous = records.read_record(store, settings.metadata_bucket, image_id)
    journal = Journal(
        store, settings.metadata_bucket, image_id, ref, route, owner, indexed_as=previous and previous.get("status")
    )
    return journal.save(
        status=Status.FAILED, error=reason, conflict=conflict, progress={"phase": "refused", "done": 0, "total": 0}
    )


def forget(store: S3Storage, settings: Settings, key: str) -> None:
    """``key`` has its readable id now: drop the failed record it got while another key held the id."""
    refused = distinct_id(key)
    store.delete_keys(
        settings.metadata_bucket, [records.record_key(refused), records.index_key(Status.FAILED, refused)]
    )


def _same_page(key: str, other: str) -> bool:
    """Both are page sources of one page of one item (of different versions of its document)."""
    page, other_page = page_of(key), page_of(other)
    return bool(page and other_page and page[:2] == other_page[:2])
