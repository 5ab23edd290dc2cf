"""boto3 clients for one region, built once per command, and a patient wait for AWS Batch.

boto3 honours AWS_ENDPOINT_URL, so the same code reaches the embedded moto
endpoint in tests and AWS in a deployment.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import boto3
from botocore.exceptions import ClientError


class Aws:
    def __init__(self, region: str) -> None:
        self.region = region
        self.session = boto3.Session(region_name=region)
        self._clients: dict[str, Any] = {}

    @functools.cached_property
    def account(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    def client(self, service: str) -> Any:
        """One client per service for the life of this object."""
        if service not in self._clients:
            client = self.session.client(service)
            if service == "s3control" and not (urlparse(client.meta.endpoint_url).hostname or "").endswith(
                "amazonaws.com"
            ):  # S3 Control's endpoint rules put ACCOUNT. in front of a local host name too
                client.meta.events.register("before-sign.s3-control", _without_account_host)
            self._clients[service] = client
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def iam(self) -> Any:
        return self.client("iam")

    @property
    def batch(self) -> Any:
        return self.client("batch")

    @property
    def ecr(self) -> Any:
        return self.client("ecr")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")


def _without_account_host(request: Any, **_: Any) -> None:
    parts = urlsplit(request.url)
    request.url = urlunsplit(parts._replace(netloc=parts.netloc.split(".", 1)[1]))


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def wait_for(ready: Callable[[], bool], what: str, timeout: float = 600, every: float = 5) -> None:
    """Poll until ``ready()``: Batch applies state changes asynchronously, deletions included."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
