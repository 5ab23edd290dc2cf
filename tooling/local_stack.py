"""The AWS side of a deployment, on the embedded S3 endpoint: buckets, CORS, the event queue and its dead letters.

S3 notifications go to an SQS queue with a dead-letter queue and a redrive
policy, as ``provision`` sets them up. ``EventSourceMapping`` then does locally
what Lambda's event source mapping does: it receives up to ``batch_size``
messages (hidden for ``visibility_timeout``), invokes ``events.handle_s3_event``
with the SQS event Lambda would send, at most ``concurrency`` invocations at a
time, and deletes the messages the answer does not name in
``batchItemFailures`` (all of them stay when the invocation raises). SQS itself
moves a message to the dead-letter queue after ``MAX_RECEIVES`` deliveries.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from app import events
from config import Settings
from tooling.deploy import documents, queues  # the buckets' CORS and event wiring, as provisioned

log = logging.getLogger(__name__)

QUEUE_NAME = "tiler-source-events"
DEAD_LETTER_QUEUE_NAME = "tiler-source-events-dead"


def public_read(bucket: str) -> dict:
    """The tiles bucket's policy: anyone may read objects (viewers on any site), nobody may list."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicReadTiles",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        concurrency: int = 2,
        visibility_timeout: int = 60,
        batch_size: int = 1,
        handler: Callable[[dict, Any], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.queue_name = settings.event_queue or QUEUE_NAME
        self.dead_letter_queue_name = settings.dead_letter_queue or DEAD_LETTER_QUEUE_NAME
        self.queue_url = self.dead_letter_queue_url = self.queue_arn = ""
        self.mapping = EventSourceMapping(self, concurrency, batch_size, visibility_timeout, handler)

    def provision(self) -> None:
        """Create the three buckets, the tiles bucket's CORS rules, the queues and source-bucket notifications."""
        for bucket in (self.settings.source_bucket, self.settings.tiles_bucket, self.settings.metadata_bucket):
            self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_cors(Bucket=self.settings.tiles_bucket, CORSConfiguration=documents.TILES_CORS)
        self.s3.put_bucket_policy(
            Bucket=self.settings.tiles_bucket, Policy=json.dumps(public_read(self.settings.tiles_bucket))
        )
        self.s3.put_bucket_cors(Bucket=self.settings.source_bucket, CORSConfiguration=documents.UPLOAD_CORS)
        self.dead_letter_queue_url = self.sqs.create_queue(QueueName=self.dead_letter_queue_name)["QueueUrl"]
        redrive = {
            "deadLetterTargetArn": self._arn(self.dead_letter_queue_url),
            "maxReceiveCount": self.settings.max_receives,
        }
        self.queue_url = self.sqs.create_queue(
            QueueName=self.queue_name,
            Attributes={
                "VisibilityTimeout": str(self.mapping.visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        self.queue_arn = self._arn(self.queue_url)
        self.s3.put_bucket_notification_configuration(
            Bucket=self.settings.source_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": self.queue_arn, "Events": queues.NOTIFIED_EVENTS}]
            },
        )

    def attach(self) -> None:
        """Use the queues ``provision`` made (from another process)."""
        self.queue_url = self.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        self.dead_letter_queue_url = self.sqs.get_queue_url(QueueName=self.dead_letter_queue_name)["QueueUrl"]
        self.queue_arn = self._arn(self.queue_url)

    def start(self) -> None:
        self.mapping.start()

    def stop(self) -> None:
        self.mapping.stop()

    def _arn(self, queue_url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


class EventSourceMapping:
    """Lambda's SQS event source mapping, locally: batches, visibility timeout, partial batch failures.

    It polls without SQS's long polling: the embedded endpoint applies one request at a time, so a long poll
    would hold up every S3 request meanwhile.
    """

    EMPTY_POLL_SECONDS = 0.1

    def __init__(
        self,
        stack: LocalStack,
        concurrency: int,
        batch_size: int,
        visibility_timeout: int,
        handler: Callable[[dict, Any], Any] | None = None,
    ) -> None:
        self.stack, self.concurrency, self.batch_size = stack, concurrency, batch_size
        self.visibility_timeout = visibility_timeout
        self.handler = handler or events.handle_s3_event
        self.invocations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="event-source-mapping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _poll(self) -> None:
        free = threading.Semaphore(self.concurrency)  # MaximumConcurrency: a batch waits for a free invocation
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="invocation") as pool:
            while not self._stop.is_set():
                if not free.acquire(timeout=0.2):
                    continue
                try:
                    batch = self.receive()
                except Exception as error:  # noqa: BLE001 - the endpoint is going away; the loop ends with it
                    log.warning("could not poll the event queue: %s", error)
                    batch = []
                if not batch:
                    free.release()
                    self._stop.wait(self.EMPTY_POLL_SECONDS)
                    continue
                pool.submit(self._invoke, batch).add_done_callback(lambda _: free.release())

    def receive(self, wait_seconds: int = 0, visibility_timeout: int | None = None) -> list[dict[str, Any]]:
        """Up to ``batch_size`` messages as SQS records of a Lambda event, hidden for the queue's visibility timeout
        (as Lambda's mapping receives them) or ``visibility_timeout``."""
        hidden = {"VisibilityTimeout": visibility_timeout} if visibility_timeout is not None else {}
        answer = self.stack.sqs.receive_message(
            QueueUrl=self.stack.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            **hidden,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        records = []
        for message in answer.get("Messages", []):
            body = _as_s3_sends_it(message["Body"])
            if body is None:  # only moto's extra multipart announcement: S3 would not have sent it
                self.stack.sqs.delete_message(QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
                continue
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": body,
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": message.get("MessageAttributes", {}),
                    "md5OfBody": message.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.stack.queue_arn,
                    "awsRegion": self.stack.sqs.meta.region_name,
                }
            )
        return records

    def _invoke(self, batch: list[dict[str, Any]]) -> None:
        self.invocations += 1
        try:
            answer = self.handler({"Records": batch}, None)
        except Exception as error:  # noqa: BLE001 - an invocation error: every message of the batch comes back
            log.warning("invocation failed, its %d messages will be delivered again: %s", len(batch), error)
            return
        failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        done = [record for record in batch if record["messageId"] not in failed]
        for start in range(0, len(done), 10):
            self.stack.sqs.delete_message_batch(
                QueueUrl=self.stack.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(done[start : start + 10])
                ],
            )


def _as_s3_sends_it(body: str) -> str | None:
    """moto announces a multipart upload twice (``ObjectCreated:Put``, then ``:CompleteMultipartUpload``); S3
    sends only the second. The first is dropped (None: nothing left), so the demo shows no duplicate delivery S3
    would not make (the handler would shrug it off, with a warning)."""
    try:
        event = json.loads(body)
    except ValueError:
        return body
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        return body
    kept = [
        record
        for record in event["Records"]
        if not (
            isinstance(record, dict)
            and record.get("eventName") == "ObjectCreated:Put"
            and "-" in str(record.get("s3", {}).get("object", {}).get("eTag", ""))
        )
    ]
    if not kept:
        return None
    return body if len(kept) == len(event["Records"]) else json.dumps({**event, "Records": kept})
