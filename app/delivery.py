"""What an SQS batch means: each message's body is one S3 event, handled and answered on its own.

Lambda's event source mapping (with ``ReportBatchItemFailures``) deletes the
messages of a batch except those the answer names in ``batchItemFailures``, so
one bad message never runs its neighbours again. A failed message is hidden for
a growing delay before it comes back (``queue.back_off``); after
``MAX_RECEIVES`` deliveries SQS sets it aside in the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from app import queue

log = logging.getLogger(__name__)


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and all(_is_message(r) for r in records)


def handle_batch(
    event: dict[str, Any], handle_one: Callable[[Any], Any], backoff_seconds: int
) -> dict[str, list[dict[str, str]]]:
    """Hand each message's S3 event to ``handle_one``; the answer names the messages that must come back."""
    failures = []
    for message in event["Records"]:
        try:
            body = json.loads(message.get("body") or "")
        except ValueError:
            body = message.get("body")  # handle_one refuses it with the reason, so it reaches the dead letters
        try:
            handle_one(body)
        except Exception as error:  # noqa: BLE001 - reported below; the other messages still get their turn
            receives = int(message.get("attributes", {}).get("ApproximateReceiveCount", 1))
            delay = queue.back_off(message["eventSourceARN"], message["receiptHandle"], receives, backoff_seconds)
            log.warning(
                "message %s failed on delivery %d, back in %ds: %s", message["messageId"], receives, delay, error
            )
            failures.append({"itemIdentifier": message["messageId"]})
    return {"batchItemFailures": failures}


def _is_message(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:sqs" and bool(record.get("messageId"))
