"""A deployment's AWS side on the embedded S3 endpoint, with the handles tests need."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyvips

from config import Settings
from tooling.local_stack import LocalStack


class Cloud:
    def __init__(self, settings: Settings, endpoint: Any, work_dir: Path) -> None:
        self.settings, self.endpoint, self.url, self.work_dir = settings, endpoint, endpoint.url, work_dir
        self.stack = LocalStack(settings)
        self.stack.provision()
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")

    def upload(self, key: str, image: pyvips.Image | bytes, suffix: str = ".jpg") -> str:
        body = image if isinstance(image, bytes) else image.write_to_buffer(suffix)
        return self.s3.put_object(Bucket=self.settings.source_bucket, Key=key, Body=body)["ETag"].strip('"')

    def events(self) -> list[dict[str, Any]]:
        """Every S3 event delivered so far (as Lambda would receive them), test events left out."""
        found = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not answer.get("Messages"):
                return found
            for message in answer["Messages"]:
                self.sqs.delete_message(QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
                body = json.loads(message["Body"])
                if "Records" in body:
                    found.append(body)

    def record(self, image_id: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.settings.metadata_bucket, Key=f"jobs/{image_id}.json")["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body.read())

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def tiles(self, prefix: str = "") -> set[str]:
        return self.keys(self.settings.tiles_bucket, prefix)

    def read(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def enable_batch(self) -> tuple[str, str]:
        """A Batch queue and job definition on the endpoint (moto: jobs are recorded, no Docker runs)."""
        role = boto3.client("iam").create_role(RoleName="tiler-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch = boto3.client("batch")
        environment = batch.create_compute_environment(
            computeEnvironmentName="tiler-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        batch.create_job_queue(
            jobQueueName="tiler-queue",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
        )
        batch.register_job_definition(
            jobDefinitionName="tiler-job",
            type="container",
            containerProperties={
                "image": "tiler:latest",
                "vcpus": 4,
                "memory": 16384,
                "command": [
                    "python",
                    "-m",
                    "batch_fallback",
                    "--bucket",
                    "Ref::bucket",
                    "--key",
                    "Ref::key",
                    "--etag",
                    "Ref::etag",
                ],
            },
        )
        return "tiler-queue", "tiler-job"

    def batch_jobs(self, queue: str = "tiler-queue") -> list[dict[str, Any]]:
        batch = boto3.client("batch")
        ids = [
            job["jobId"]
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
            for job in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]
        ]
        return batch.describe_jobs(jobs=ids)["jobs"] if ids else []

    def requests_to(self, bucket: str) -> contextlib.AbstractContextManager[list[tuple[str, str]]]:
        """Yields (method, path) of each request the endpoint receives for ``bucket`` meanwhile: what reached S3,
        whichever client sent it."""
        return self._watched(lambda environ: environ["PATH_INFO"].startswith(f"/{bucket}/"))

    def requests(
        self, when: Callable[[], bool] = lambda: True
    ) -> contextlib.AbstractContextManager[list[tuple[str, str]]]:
        """Yields (method, path) of every request the endpoint receives meanwhile, for any bucket, while ``when()``
        (asked in the server's thread, as each request arrives)."""
        return self._watched(lambda _environ: when())

    @contextlib.contextmanager
    def _watched(self, keep: Callable[[dict[str, Any]], bool]) -> Iterator[list[tuple[str, str]]]:
        """(method, path) of each request the endpoint receives meanwhile whose WSGI environ ``keep`` accepts."""
        server = self.endpoint._server  # the werkzeug server of tooling.local_s3.LocalS3
        served, seen = server.app, []

        def watching(environ: dict[str, Any], start_response: Any) -> Any:
            if keep(environ):
                seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            return served(environ, start_response)

        server.app = watching
        try:
            yield seen
        finally:
            server.app = served

    @contextlib.contextmanager
    def slow_down(self, count: int, bucket: str) -> Iterator[list[str]]:
        """The endpoint answers the next ``count`` PUTs to ``bucket`` with 503 SlowDown, as S3 does under load;
        yields the paths it refused."""
        server = self.endpoint._server  # the werkzeug server of tooling.local_s3.LocalS3
        served, refused = server.app, []

        def refusing(environ: dict[str, Any], start_response: Any) -> Any:
            if (
                environ["REQUEST_METHOD"] == "PUT"
                and environ["PATH_INFO"].startswith(f"/{bucket}/")
                and len(refused) < count
            ):
                refused.append(environ["PATH_INFO"])
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("503 Slow Down", [("Content-Type", "application/xml")])
                return [b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"]
            return served(environ, start_response)

        server.app = refusing
        try:
            yield refused
        finally:
            server.app = served
