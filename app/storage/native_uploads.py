"""Publishing PUTs through the AWS Common Runtime's native S3 client (awscrt), off the GIL.

A conversion publishes hundreds of small objects while libvips still needs
the same cores. botocore spends 2 to 3 ms of Python per request under the GIL;
the CRT client signs, sends and retries in native threads for about 0.4 ms of
CPU each, with the standard retry mode (exponential backoff with full jitter:
503 SlowDown, other 5xx and dropped connections are retried). It is the client
boto3's own CRT transfers and the AWS CLI use.

boto3 still makes every other call, and tells this client all it needs: where
a bucket is (its endpoint rules, ``AWS_ENDPOINT_URL``), the region, the
credentials, and whether to send checksums.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from awscrt.http import HttpHeaders, HttpRequest
from awscrt.s3 import (
    S3ChecksumAlgorithm,
    S3ChecksumConfig,
    S3ChecksumLocation,
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
    S3RetryConfig,
    S3RetryMode,
)
from botocore.awsrequest import AWSResponse
from s3transfer.crt import BotocoreCRTCredentialsWrapper


class Upload(Future):
    """A PUT in flight: resolves to the bytes sent, or raises the CRT's error once retries are spent
    (``awscrt.s3.S3ResponseError`` for an error answer from S3).

    ``cancel`` stops the request; the upload then fails rather than counting as cancelled, since
    the object may have landed already.
    """

    def __init__(self, stop: Callable[[], None]) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()
        self._stop = stop

    def cancel(self) -> bool:
        if not self.done():
            self._stop()
        return False


class NativeUploader:
    """``put_file`` returns at once; at most ``connections`` requests are in flight, the rest wait their turn."""

    def __init__(self, session: Any, config: Any, connections: int) -> None:
        """``session`` and ``config`` are those of the process's boto3 client, so both resolve alike."""
        self._probe = session.client("s3", config=config)  # never sends anything: see _where
        self._probe.meta.events.register("before-send.s3.PutObject", self._not_sent)
        self._probed: list[str] = []
        meta = self._probe.meta
        self._client = S3Client(
            region=meta.region_name,
            tls_mode=S3RequestTlsMode.ENABLED
            if urlsplit(meta.endpoint_url).scheme == "https"
            else S3RequestTlsMode.DISABLED,
            credential_provider=BotocoreCRTCredentialsWrapper(session.get_credentials()).to_crt_credentials_provider(),
            max_active_connections_override=connections,
            retry_config=S3RetryConfig(retry_mode=S3RetryMode.STANDARD),
        )
        # As botocore does by default (AWS_REQUEST_CHECKSUM_CALCULATION=when_required turns both off).
        when_required = getattr(meta.config, "request_checksum_calculation", None) == "when_required"
        self._checksum = (
            None
            if when_required
            else S3ChecksumConfig(algorithm=S3ChecksumAlgorithm.CRC32, location=S3ChecksumLocation.HEADER)
        )
        self._buckets: dict[str, tuple[str, str]] = {}
        self._in_flight: set[Any] = set()  # the CRT requests, kept alive until they finish
        self._lock = threading.Lock()

    def put_file(self, path: Path, bucket: str, key: str, headers: dict[str, str]) -> Upload:
        """Start a PUT of ``path`` at ``key``."""
        host, prefix = self._where(bucket)
        size = path.stat().st_size
        message = HttpRequest(
            "PUT",
            prefix + quote(key, safe="/~"),
            HttpHeaders([("Host", host), ("Content-Length", str(size)), *headers.items()]),
        )
        request = self._client.make_request(
            type=S3RequestType.PUT_OBJECT,
            request=message,
            send_filepath=str(path),
            operation_name="PutObject",
            checksum_config=self._checksum,
        )
        with self._lock:
            self._in_flight.add(request)
        upload = Upload(request.cancel)

        def finished(crt_future: Future) -> None:
            with self._lock:
                self._in_flight.discard(request)
            error = crt_future.exception()
            if error is None:
                upload.set_result(size)
            else:
                upload.set_exception(error)

        request.finished_future.add_done_callback(finished)
        return upload

    def _where(self, bucket: str) -> tuple[str, str]:
        """(Host header, path prefix) of a bucket's objects: where botocore's endpoint rules send a PutObject
        (regional host or not, virtual-hosted or path style, ``AWS_ENDPOINT_URL``). Presigned URLs would not
        do: they name the global endpoint."""
        with self._lock:
            if bucket not in self._buckets:
                self._probe.put_object(Bucket=bucket, Key="k", Body=b"")  # _not_sent notes its URL
                url = urlsplit(self._probed.pop())
                self._buckets[bucket] = (url.netloc, url.path[:-1])  # the path ends with the key: "/k", "/bucket/k"
            return self._buckets[bucket]

    def _not_sent(self, request: Any, **_: Any) -> AWSResponse:
        """The probe client's answer to its own requests, instead of sending them."""
        self._probed.append(request.url)
        return AWSResponse(request.url, 200, {}, _NoBody())


class _NoBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""
