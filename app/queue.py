"""The event queue and its dead letters: the only SQS calls the function, the dashboard and the CLI make.

S3 sends every event of the source bucket to ``EVENT_QUEUE``; Lambda's event
source mapping hands them to the handler in batches. A message that fails
``MAX_RECEIVES`` times is set aside by SQS in ``DEAD_LETTER_QUEUE``, where an
operator sees it and sends it back (``redrive``) once the fault is gone. The
stuck-job sweep puts a source version back on the queue with ``send_source``,
so a re-drive always takes the normal path.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
from botocore.config import Config

from app.model import SourceRef

log = logging.getLogger(__name__)

REDRIVES = "tiler-redrives"  # message attributes a re-drive adds: how often, and when it first failed
FIRST_FAILURE = "tiler-first-failure"
S3_EVENT_HANDLER = "app.events.handle_s3_event"
RUN_FIELD = "reprocessRun"  # in an S3 event record: the re-processing run that sent it
LOOK_SECONDS = 30  # a listed or re-driven dead letter is hidden from other readers this long
MAX_BACKOFF_SECONDS = 900


@functools.cache
def _client():
    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))


@functools.cache
def url(name: str, account: str = "") -> str:
    """A queue's URL from its name (and owner, for a queue named by its ARN)."""
    owner = {"QueueOwnerAWSAccountId": account} if account else {}
    return _client().get_queue_url(QueueName=name, **owner)["QueueUrl"]


def url_of_arn(arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> the queue's URL."""
    _, _, _, _, account, name = arn.split(":", 5)
    return url(name, account)


def s3_event(ref: SourceRef, name: str = "ObjectCreated:Redrive", run: str | None = None) -> dict[str, Any]:
    """An S3 event naming one source version, as S3 would send it (the key URL-encoded), for the queue or for
    an asynchronous invocation: ``configurationId`` names the handler after a colon, which is how Zappa's
    handler finds the function for an S3 record it was invoked with directly. ``run`` names a re-processing
    run (``RUN_FIELD``): a version already converted is converted again, once per run."""
    obj: dict[str, Any] = {"key": quote_plus(ref.key, safe="/")}
    if ref.etag:
        obj["eTag"] = ref.etag
    if ref.size is not None:
        obj["size"] = ref.size
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": _iso(datetime.now(UTC)),
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": f"tiler:{S3_EVENT_HANDLER}",
            "bucket": {"name": ref.bucket, "arn": f"arn:aws:s3:::{ref.bucket}"},
            "object": obj,
        },
        **({RUN_FIELD: run} if run else {}),
    }
    return {"Records": [record]}


def send_source(queue: str, ref: SourceRef) -> str:
    """Put one source version on the event queue, as if S3 had announced it again; returns the message id."""
    body = json.dumps(s3_event(ref))
    return _client().send_message(QueueUrl=url(queue), MessageBody=body)["MessageId"]


def back_off(queue_arn: str, receipt_handle: str, receives: int, base_seconds: int) -> int:
    """Hide a failed message for ``base_seconds`` doubled at each further delivery; returns the seconds.

    The queue's own visibility timeout is six function timeouts (what Lambda
    asks for), far too long a wait for a retry; a failed message comes back
    sooner this way. Best effort: without it the message still comes back.
    """
    seconds = min(base_seconds * 2 ** max(receives - 1, 0), MAX_BACKOFF_SECONDS)
    try:
        _client().change_message_visibility(
            QueueUrl=url_of_arn(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
    except Exception as error:  # noqa: BLE001 - the queue's visibility timeout brings it back anyway
        log.warning("could not set the retry delay of a failed message: %s", error)
    return seconds


@dataclass(frozen=True)
class DeadLetter:
    """One message SQS set aside after its deliveries all failed."""

    message_id: str
    keys: tuple[str, ...]  # the source keys its event names ("" entries for records that name none)
    first_failure: str  # ISO time of its first delivery (which failed: it would not be here otherwise)
    attempts: int  # deliveries before it was set aside, over every re-drive
    redrives: int
    body: str


def dead_letters(queue: str, max_receives: int, limit: int = 100) -> tuple[list[DeadLetter], int]:
    """Up to ``limit`` dead letters, and how many the queue holds (SQS's approximate count).

    SQS can only show a message by receiving it, so each is hidden for a moment
    while the list is read, then made visible again.
    """
    found: dict[str, DeadLetter] = {}
    receipts = []
    for message in _received(queue, limit):
        receipts.append(message["ReceiptHandle"])
        found.setdefault(message["MessageId"], _dead_letter(message, max_receives))
    _release(queue, receipts)
    total = int(
        _client().get_queue_attributes(QueueUrl=url(queue), AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    return sorted(found.values(), key=lambda letter: letter.first_failure), max(total, len(found))


def redrive(
    dead_letter_queue: str, event_queue: str, max_receives: int, only: set[str] | None = None, limit: int = 10_000
) -> list[DeadLetter]:
    """Send dead letters back to the event queue (all, or those whose message ids are ``only``).

    Each is sent before it is deleted, so a failure in between leaves a
    duplicate (which the claims make harmless), never a loss.
    """
    sent, passed_over = [], []
    for message in _received(dead_letter_queue, limit):
        letter = _dead_letter(message, max_receives)
        if only is not None and letter.message_id not in only:
            passed_over.append(message["ReceiptHandle"])
            continue
        _client().send_message(
            QueueUrl=url(event_queue),
            MessageBody=message["Body"],
            MessageAttributes={
                REDRIVES: {"DataType": "Number", "StringValue": str(letter.redrives + 1)},
                FIRST_FAILURE: {"DataType": "String", "StringValue": letter.first_failure},
                "tiler-attempts": {"DataType": "Number", "StringValue": str(letter.attempts)},
            },
        )
        _client().delete_message(QueueUrl=url(dead_letter_queue), ReceiptHandle=message["ReceiptHandle"])
        sent.append(letter)
    _release(dead_letter_queue, passed_over)
    return sent


def _received(queue: str, limit: int) -> Iterator[dict[str, Any]]:
    """Messages of ``queue`` until it shows no more (or ``limit``), each hidden for LOOK_SECONDS."""
    count = 0
    while count < limit:
        answer = _client().receive_message(
            QueueUrl=url(queue),
            MaxNumberOfMessages=min(10, limit - count),
            VisibilityTimeout=LOOK_SECONDS,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return
        count += len(messages)
        yield from messages


def _release(queue: str, receipts: list[str]) -> None:
    for start in range(0, len(receipts), 10):
        chunk = receipts[start : start + 10]
        entries = [{"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": 0} for n, r in enumerate(chunk)]
        _client().change_message_visibility_batch(QueueUrl=url(queue), Entries=entries)


def _dead_letter(message: dict[str, Any], max_receives: int) -> DeadLetter:
    attributes = message.get("MessageAttributes", {})
    redrives = int(attributes.get(REDRIVES, {}).get("StringValue", 0))
    earlier = int(attributes.get("tiler-attempts", {}).get("StringValue", 0))
    first_receive = int(message.get("Attributes", {}).get("ApproximateFirstReceiveTimestamp", 0)) / 1000
    first = attributes.get(FIRST_FAILURE, {}).get("StringValue") or _iso(datetime.fromtimestamp(first_receive, UTC))
    return DeadLetter(
        message_id=message["MessageId"],
        keys=tuple(_keys(message.get("Body", ""))),
        first_failure=first,
        attempts=earlier + max_receives,  # SQS sets a message aside once it was delivered max_receives times
        redrives=redrives,
        body=message.get("Body", ""),
    )


def _keys(body: str) -> list[str]:
    """The source keys an S3 event names, decoded; what cannot be read is shown as it came."""
    try:
        event = json.loads(body)
        return [unquote_plus(record["s3"]["object"]["key"]) for record in event["Records"]]
    except (ValueError, KeyError, TypeError):
        return [body[:200]]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
