"""What an operator does with dead letters: see them beside their jobs, and send them back once the fault is gone.

The dashboard and ``python -m app redrive STAGE`` share this. A dead letter
goes back to the event queue as it was, so it takes the normal path. A job the
sweep has since recorded ``failed`` would shrug that event off as handled, so
it is retried the way the dashboard's retry button does it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app import queue, records
from app.ids import image_id_for
from app.model import Status
from app.storage.s3 import S3Storage
from app.web.catalog import CannotRetry, Catalog
from config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listed:
    letter: queue.DeadLetter
    image_ids: tuple[str, ...]
    status: str  # the job's status now ("" when no record was ever written)
    error: str  # the job's last error, if its record has one


def listing(settings: Settings, limit: int = 100) -> tuple[list[Listed], int]:
    """Up to ``limit`` dead letters with what their jobs' records say, and how many there are in all."""
    if not settings.dead_letter_queue:
        return [], 0
    letters, total = queue.dead_letters(settings.dead_letter_queue, settings.max_receives, limit)
    store = S3Storage(settings.upload_workers)
    listed = []
    for letter in letters:
        ids = tuple(image_id_for(key) for key in letter.keys if key)
        record = records.read_record(store, settings.metadata_bucket, ids[0]) if len(ids) == 1 else None
        listed.append(Listed(letter, ids, (record or {}).get("status", ""), (record or {}).get("error") or ""))
    return listed, total


def redrive(settings: Settings, only: set[str] | None = None) -> list[queue.DeadLetter]:
    """Send dead letters back (all, or those whose message ids are ``only``); returns those sent."""
    if not settings.dead_letter_queue or not settings.event_queue:
        return []
    sent = queue.redrive(settings.dead_letter_queue, settings.event_queue, settings.max_receives, only)
    catalog = Catalog(settings)
    for image_id in {image_id_for(key) for letter in sent for key in letter.keys if key}:
        record: dict[str, Any] | None = catalog.record(image_id)
        if record and record["status"] == Status.FAILED:  # failed for good by the sweep: the event alone is ignored
            try:
                catalog.retry(image_id)
            except CannotRetry as error:
                log.warning("could not retry %s: %s", image_id, error)
    return sent
