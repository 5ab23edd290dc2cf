"""The S3 event entry point that zappa_settings.json wires to ObjectCreated on the source bucket.

Every record of an event is handled, not only the first. Keys arrive
URL-encoded the way S3 sends them (``+`` for space). Test events, non-create
events and keys that look like this project's own outputs are ignored, so the
function can never trigger itself. A record that cannot be routed is an error.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from typing import Any
from urllib.parse import unquote_plus

from app import items, jobs
from app.collection import runner as collection_runner
from app.errors import TransientError
from app.ids import PAGES_PREFIX, page_of
from app.iiif import serving
from app.model import SourceRef
from config import Settings

log = logging.getLogger(__name__)

# Keys our own publishing writes, should a bucket ever be shared or notifications mis-wired.
_OUTPUT_KEY = re.compile(
    rf"^(jobs|claims|index|members|{serving.PREFIX.rstrip('/')})/|_files/\d+/|\.dzi$"
    r"|/(info|manifest|collection)\.json$"
    r"|/default\.jpg$"
)


# What sits on top of the per-image engine and hears of every final record.
SUBSCRIBERS: tuple[jobs.Listener, ...] = (
    lambda record, settings, _key: collection_runner.image_finished(record, settings),
    items.page_finished,
)


class UnroutableRecord(Exception):
    """An event record this function must not silently accept."""


def handle_s3_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Zappa's entry point: convert every object the event names; raise if any needs a retry."""
    settings = Settings.from_env()
    runtime = jobs.Runtime(
        owner=_owner(context),
        remaining_seconds=_remaining(context),
        memory_mb=int(getattr(context, "memory_limit_in_mb", 0) or 0),
    )
    if event.get("Event") == "s3:TestEvent":
        log.info("ignored s3:TestEvent")
        return {"handled": 0, "ignored": 1}
    refs, ignored = sources_in(event, settings)
    failures: list[Exception] = []
    statuses = []
    for ref in refs:
        try:
            if collection_runner.is_task_key(ref.key):
                record = collection_runner.start(ref, settings)
            else:
                record = jobs.handle(ref, settings, runtime, SUBSCRIBERS)
            statuses.append(record["status"] if record else "duplicate")
        except Exception as error:  # keep going: the other records deserve their turn
            if isinstance(error, TransientError):
                log.warning("s3://%s/%s will be retried: %s", ref.bucket, ref.key, error)
            else:
                log.exception("s3://%s/%s will be retried", ref.bucket, ref.key)
            failures.append(error)
    if failures:
        raise failures[0]
    return {"handled": len(refs), "ignored": ignored, "statuses": statuses}


def sources_in(event: dict[str, Any], settings: Settings) -> tuple[list[SourceRef], int]:
    """The source versions an S3 event names, and how many records were ignored."""
    if "Records" not in event:
        raise UnroutableRecord(f"not an S3 event: {sorted(event)}")
    refs, ignored = [], 0
    for record in event["Records"]:
        if record.get("eventSource") != "aws:s3" or "s3" not in record:
            raise UnroutableRecord(f"not an S3 record: {record.get('eventSource')!r}")
        name = record.get("eventName", "")
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        if not name.startswith("ObjectCreated:"):
            log.info("ignored %s for s3://%s/%s", name, bucket, key)
            ignored += 1
        elif _OUTPUT_KEY.search(key) or key.endswith("/"):
            log.warning("ignored s3://%s/%s: an output or folder key, never a source", bucket, key)
            ignored += 1
        elif key.startswith(PAGES_PREFIX) and not page_of(key):
            log.warning("ignored s3://%s/%s: pages/ holds documents' pages only", bucket, key)
            ignored += 1
        elif key.lower().endswith(".csv"):
            log.info("ignored s3://%s/%s: a collection's item list, not an image", bucket, key)
            ignored += 1
        elif bucket != settings.source_bucket:
            raise UnroutableRecord(
                f"s3://{bucket}/{key}: events must come from SOURCE_BUCKET {settings.source_bucket!r}"
            )
        else:
            obj = record["s3"]["object"]
            refs.append(SourceRef(bucket, key, (obj.get("eTag") or "").strip('"') or None, obj.get("size")))
    return refs, ignored


def _owner(context: Any) -> str:
    request = getattr(context, "aws_request_id", None)
    return f"lambda:{request}" if request else f"{socket.gethostname()}:{os.getpid()}"


def _remaining(context: Any):
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return lambda: context.get_remaining_time_in_millis() / 1000
