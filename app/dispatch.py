"""AWS Batch submission: the only Batch calls.

The job definition runs ``python -m batch_fallback --bucket B --key K --etag E``
with those three values passed as Batch parameters, so the container converts
exactly the source version Lambda saw, with the same code.
"""

from __future__ import annotations

import functools
import re

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.errors import TransientError
from app.model import SourceRef


class BatchNotConfigured(Exception):
    """No queue or job definition: big images have nowhere to go."""


@functools.cache
def _client():
    return boto3.client("batch", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def submit(ref: SourceRef, image_id: str, queue: str, definition: str) -> str:
    """Submit the conversion of ``ref`` to AWS Batch; returns the Batch job id."""
    if not queue or not definition:
        raise BatchNotConfigured("set BATCH_JOB_QUEUE and BATCH_JOB_DEFINITION to convert images this large")
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"tile-{image_id}")[:128]
    try:
        answer = _client().submit_job(
            jobName=name,
            jobQueue=queue,
            jobDefinition=definition,
            parameters={"bucket": ref.bucket, "key": ref.key, "etag": ref.etag or ""},
        )
    except (ClientError, BotoCoreError) as error:
        raise TransientError(f"AWS Batch did not accept the job: {error}") from error
    return answer["jobId"]
