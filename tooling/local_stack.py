"""The AWS side of a deployment, on the embedded S3 endpoint: buckets, CORS, event wiring.

S3 notifications go to an SQS queue (what moto can deliver) and a pump hands
each message body, which is exactly the event Lambda would receive, to the
same ``events.handle_s3_event``. A failed message stays on the queue and comes
back after its visibility timeout: the same retry semantics as Lambda's.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3

from app import events
from config import Settings

log = logging.getLogger(__name__)

QUEUE_NAME = "tiler-source-events"
TILES_CORS = {
    "CORSRules": [
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "Content-Length"],
            "MaxAgeSeconds": 86400,
        }
    ]
}

UPLOAD_CORS = {
    "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 3600}]
}  # the dashboard's presigned POST uploads


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
    def __init__(self, settings: Settings, concurrency: int = 2, retry_after_seconds: int = 5) -> None:
        self.settings = settings
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.concurrency = concurrency
        self.retry_after_seconds = retry_after_seconds
        self.queue_url = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def provision(self) -> None:
        """Create the three buckets, the tiles bucket's CORS rules, and source-bucket notifications."""
        for bucket in (self.settings.source_bucket, self.settings.tiles_bucket, self.settings.metadata_bucket):
            self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_cors(Bucket=self.settings.tiles_bucket, CORSConfiguration=TILES_CORS)
        self.s3.put_bucket_policy(
            Bucket=self.settings.tiles_bucket, Policy=json.dumps(public_read(self.settings.tiles_bucket))
        )
        self.s3.put_bucket_cors(Bucket=self.settings.source_bucket, CORSConfiguration=UPLOAD_CORS)
        self.queue_url = self.sqs.create_queue(
            QueueName=QUEUE_NAME, Attributes={"VisibilityTimeout": str(self.retry_after_seconds)}
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.settings.source_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
            },
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._pump, name="event-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _pump(self) -> None:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="handler") as pool:
            while not self._stop.is_set():
                answer = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=self.concurrency, WaitTimeSeconds=1
                )
                list(pool.map(self._deliver, answer.get("Messages", [])))

    def _deliver(self, message: dict) -> None:
        try:
            events.handle_s3_event(_as_s3_sends_it(json.loads(message["Body"])))
        except Exception as error:  # left on the queue: it comes back, as Lambda retries
            log.warning("event failed, will be redelivered: %s", error)
            return
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _as_s3_sends_it(event: dict) -> dict:
    """moto announces a multipart upload twice (``ObjectCreated:Put``, then ``:CompleteMultipartUpload``); S3
    sends only the second. The first is dropped, so the demo shows no duplicate delivery S3 would not make
    (the handler would shrug it off, with a warning)."""
    if "Records" not in event:
        return event
    return {
        **event,
        "Records": [
            record
            for record in event["Records"]
            if not (
                record.get("eventName") == "ObjectCreated:Put"
                and "-" in record.get("s3", {}).get("object", {}).get("eTag", "")
            )
        ],
    }
