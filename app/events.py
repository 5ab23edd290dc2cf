"""The S3 event entry point: ObjectCreated and ObjectRemoved on the source bucket.

S3 notifies an SQS queue, whose event source mapping invokes this in batches:
each message's body is one S3 event (``app.delivery`` answers per message, so
one failure never re-runs its neighbours). A plain S3 event (tests, a manual
invocation) is handled the same way without the queue.

Every record of an event is handled, not only the first. Keys arrive
URL-encoded the way S3 sends them (``+`` for space). ObjectCreated converts
the key's newest version; ObjectRemoved withdraws what the key published. Test
events, folder markers and item lists (``.csv``) are ignored; a key that
cannot be published (see ``ids.key_problem``) is refused by its job, with a
``failed`` record that says why. Each record is checked on its own: a
malformed one (missing keys, wrong types, another bucket) is logged with its
reason and is an error, raised once the well-formed records beside it are done.
A record may carry ``reprocessRun`` (``python -m app reprocess``): the version
is converted again even if it was already, once per run.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from app import items, jobs
from app.collection import runner as collection_runner
from app.collection import withdrawal as collection_withdrawal
from app.delivery import handle_batch, is_sqs_batch
from app.errors import TransientError
from app.metrics import Metrics
from app.model import SourceRef
from app.queue import RUN_FIELD
from config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What one event record asks for: a source version to convert, or a key whose object was removed."""

    ref: SourceRef
    removed: bool = False
    run: str | None = None


# What sits on top of the per-image engine and hears of every final record.
SUBSCRIBERS: tuple[jobs.Listener, ...] = (
    collection_runner.image_finished,
    items.page_finished,
    collection_withdrawal.image_withdrawn,  # its collections publish again without it
)


class UnroutableRecord(Exception):
    """An event record this function must not silently accept."""


def handle_s3_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Zappa's entry point: convert every object the event names.

    An SQS batch is answered with the messages that failed (``batchItemFailures``);
    a plain S3 event raises if any record needs a retry. A malformed record is
    logged with its reason and raised only after the well-formed records beside
    it have been handled.
    """
    settings = Settings.from_env()
    runtime = jobs.Runtime(
        owner=_owner(context),
        remaining_seconds=_remaining(context),
        memory_mb=int(getattr(context, "memory_limit_in_mb", 0) or 0),
    )
    metrics = Metrics(settings, runtime.owner, print if context is not None else None)  # EMF: Lambda's log only
    if is_sqs_batch(event):
        return handle_batch(
            event, lambda body: _handle(body, settings, runtime, metrics), settings.retry_backoff_seconds
        )
    return _handle(event, settings, runtime, metrics)


def _handle(event: Any, settings: Settings, runtime: jobs.Runtime, metrics: Metrics) -> dict[str, Any]:
    """One S3 event: every record routed, the failures raised once all are done."""
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent":
        log.info("ignored s3:TestEvent")
        return {"handled": 0, "ignored": 1}
    deliveries, ignored, malformed = _routed(event, settings)
    failures: list[Exception] = []
    statuses = []
    for delivery in deliveries:
        ref = delivery.ref
        try:
            if delivery.removed:
                record = jobs.source_removed(ref, settings, runtime, SUBSCRIBERS)
            elif collection_runner.is_collection_key(ref.key):
                record = collection_runner.handle(ref, settings)
            else:
                record = jobs.handle(ref, settings, runtime, (*SUBSCRIBERS, metrics.job_finished), run=delivery.run)
            statuses.append(record["status"] if record else "duplicate")
        except Exception as error:  # keep going: the other records deserve their turn
            metrics.retried(ref.key, error)
            if isinstance(error, TransientError):
                log.warning("s3://%s/%s will be retried: %s", ref.bucket, ref.key, error)
            else:
                log.exception("s3://%s/%s will be retried", ref.bucket, ref.key)
            failures.append(error)
    failures += malformed
    if failures:
        raise failures[0]
    return {"handled": len(deliveries), "ignored": ignored, "statuses": statuses}


def _routed(event: Any, settings: Settings) -> tuple[list[Delivery], int, list[UnroutableRecord]]:
    """Each record on its own: a malformed one is logged and set aside, the others still routed."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        keys = sorted(map(str, event)) if isinstance(event, dict) else type(event).__name__
        error = UnroutableRecord(f"not an S3 event: {keys}")
        log.error("%s", error)
        return [], 0, [error]
    deliveries, ignored, malformed = [], 0, []
    for number, record in enumerate(event["Records"]):
        try:
            delivery = _delivery_of(record, settings)
        except UnroutableRecord as error:
            log.error("event record %d refused: %s", number, error)
            malformed.append(error)
            continue
        if delivery is None:
            ignored += 1
        else:
            deliveries.append(delivery)
    return deliveries, ignored, malformed


def _delivery_of(record: Any, settings: Settings) -> Delivery | None:
    """What one record asks for; None when it is to be ignored; UnroutableRecord when malformed."""
    if not isinstance(record, dict):
        raise UnroutableRecord(f"a record must be an object, not {type(record).__name__}")
    if record.get("eventSource") != "aws:s3" or "s3" not in record:
        raise UnroutableRecord(f"not an S3 record: {str(record.get('eventSource'))[:100]!r}")
    name = record.get("eventName", "")
    s3 = record["s3"]
    bucket = _field(s3, "bucket", "name")
    raw_key = _field(s3, "object", "key")
    if not isinstance(name, str):
        raise UnroutableRecord(f"eventName must be a string, not {type(name).__name__}")
    key = unquote_plus(raw_key)
    if len(key.encode("utf-8", "surrogatepass")) > 1024 or "\x00" in key:
        raise UnroutableRecord(f"s3://{bucket}/{key[:100]!r}: not a key S3 could hold")
    removed = name.startswith("ObjectRemoved:")
    if not (removed or name.startswith("ObjectCreated:")):
        log.info("ignored %s for s3://%s/%s", name, bucket, key)
        return None
    if key.endswith("/"):
        log.info("ignored s3://%s/%s: a folder marker, not a file", bucket, key)
        return None
    if key.lower().endswith(".csv"):
        log.info("ignored s3://%s/%s: a collection's item list, not an image", bucket, key)
        return None
    if bucket != settings.source_bucket:
        raise UnroutableRecord(f"s3://{bucket}/{key}: events must come from SOURCE_BUCKET {settings.source_bucket!r}")
    if removed:
        return Delivery(SourceRef(bucket, key), removed=True)
    obj = s3["object"]
    etag, size = obj.get("eTag"), obj.get("size")
    if etag is not None and not isinstance(etag, str):
        raise UnroutableRecord(f"s3://{bucket}/{key}: eTag must be a string, not {type(etag).__name__}")
    if size is not None and (type(size) is not int or size < 0):
        raise UnroutableRecord(f"s3://{bucket}/{key}: size must be a whole number of bytes, not {size!r}"[:300])
    run = record.get(RUN_FIELD)
    if run is not None and not (isinstance(run, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run)):
        raise UnroutableRecord(f"s3://{bucket}/{key}: {RUN_FIELD} must be a run id, not {str(run)[:80]!r}")
    return Delivery(SourceRef(bucket, key, (etag or "").strip('"') or None, size), run=run)


def _field(s3: Any, parent: str, name: str) -> str:
    """``s3[parent][name]``, a non-empty string, or a clear reason why not."""
    inner = s3.get(parent) if isinstance(s3, dict) else None
    value = inner.get(name) if isinstance(inner, dict) else None
    if not isinstance(value, str) or not value:
        raise UnroutableRecord(f"s3.{parent}.{name} must be a non-empty string, not {type(value).__name__}")
    return value


def _owner(context: Any) -> str:
    request = getattr(context, "aws_request_id", None)
    return f"lambda:{request}" if request else f"{socket.gethostname()}:{os.getpid()}"


def _remaining(context: Any):
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return lambda: context.get_remaining_time_in_millis() / 1000
