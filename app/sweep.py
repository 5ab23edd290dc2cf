"""The stuck-job sweep: a Zappa schedule event runs it every few minutes, so no job stays running or retrying.

The queue already brings back what a killed invocation left (its messages
reappear) and what failed (until ``MAX_RECEIVES``); the sweep catches the rest:
an AWS Batch container that died, a job whose events all went to the dead
letters, a record left behind by a crash. A job whose record says ``running`` or
``retrying`` and has not moved for longer than the queue's own retries take is
sent again through the normal path (its source's current version, as a message
on the event queue: the claim is taken over there, never here), at most
``MAX_REDRIVES`` times; after that its record ends ``failed`` with the reason.
The count is kept per source version in ``sweeps/ID.json``.
"""

from __future__ import annotations

import logging
from typing import Any

from app import queue, records
from app.errors import SourceGone
from app.model import SourceRef, Status
from app.storage.s3 import PreconditionFailed, S3Storage
from config import Settings

log = logging.getLogger(__name__)

SWEEPS_PREFIX = "sweeps/"
STUCK_STATUSES = (Status.RUNNING, Status.RETRYING)


def sweep_key(image_id: str) -> str:
    return f"{SWEEPS_PREFIX}{image_id}.json"


def stuck_after_seconds(settings: Settings) -> float:
    """How long a record may stand still: the claim's stale limit plus every back-off the queue itself waits."""
    backoffs = sum(
        min(settings.retry_backoff_seconds * 2**n, queue.MAX_BACKOFF_SECONDS) for n in range(settings.max_receives)
    )
    return settings.stale_after_seconds + backoffs


def run(event: Any = None, context: Any = None) -> dict[str, Any]:
    """Zappa's schedule entry point: re-drive or fail every stuck job; returns what it did."""
    settings = Settings.from_env()
    if not settings.event_queue:
        log.warning("sweep skipped: no EVENT_QUEUE to re-drive through")
        return {"redriven": [], "failed": []}
    store, bucket = S3Storage(settings.upload_workers), settings.metadata_bucket
    done: dict[str, Any] = {"redriven": [], "failed": []}
    for status in STUCK_STATUSES:
        prefix = records.index_key(status, "")
        for key in list(store.list_keys(bucket, prefix)):
            image_id = key[len(prefix) :]
            try:
                outcome = _sweep_one(store, settings, image_id, status)
            except Exception:  # noqa: BLE001 - one bad record must not stop the sweep of the others
                log.exception("could not sweep %s", image_id)
                continue
            if outcome:
                done[outcome].append(image_id)
    if done["redriven"] or done["failed"]:
        log.warning("sweep: re-drove %s; failed %s", done["redriven"], done["failed"])
    return done


def _sweep_one(store: S3Storage, settings: Settings, image_id: str, indexed: str) -> str | None:
    bucket = settings.metadata_bucket
    found = store.get_json(bucket, records.record_key(image_id))
    if found is None:
        return None
    record, record_etag = found
    if record["status"] != indexed or records.age_seconds(record.get("updated_at")) <= stuck_after_seconds(settings):
        return None
    source = SourceRef(**{k: record["source"].get(k) for k in ("bucket", "key", "etag", "size")})
    swept = (store.get_json(bucket, sweep_key(image_id)) or ({}, None))[0]
    count = swept.get("redrives", 0) if swept.get("etag") == source.etag else 0
    if count >= settings.max_redrives:
        return _fail(store, bucket, record, record_etag, count)
    try:
        current = store.head(SourceRef(source.bucket, source.key))
    except SourceGone:
        current = source  # the normal path records it gone
    queue.send_source(settings.event_queue, current)
    store.put_json(
        bucket,
        sweep_key(image_id),
        {
            "etag": source.etag,
            "redrives": count + 1,
            "first_at": swept.get("first_at") if count else records.now_iso(),
            "last_at": records.now_iso(),
            "status": record["status"],
        },
    )
    log.warning(
        "re-drove %s, %s since %s (re-drive %d)", image_id, record["status"], record.get("updated_at"), count + 1
    )
    return "redriven"


def _fail(store: S3Storage, bucket: str, record: dict[str, Any], record_etag: str, count: int) -> str | None:
    """End the record ``failed``, unless the job moved meanwhile (the write is conditional on the record read)."""
    phase = (record.get("progress") or {}).get("phase", "?")
    reason = (
        f"stuck in {record['status']} (phase {phase}) since {record.get('updated_at')}: re-driven {count} times "
        "(MAX_REDRIVES) without finishing"
    )
    if record.get("error"):
        reason += f"; last error: {record['error']}"
    stamp = records.now_iso()
    failed = {**record, "status": Status.FAILED, "error": reason, "updated_at": stamp, "finished_at": stamp}
    try:
        store.put_json(bucket, records.record_key(record["id"]), failed, if_match=record_etag)
    except PreconditionFailed:
        return None  # it moved: not stuck after all
    records.move_index(store, bucket, record["id"], record["status"], Status.FAILED)
    log.error("%s failed: %s", record["id"], reason)
    return "failed"
