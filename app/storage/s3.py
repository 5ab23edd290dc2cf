"""The S3 client and its calls: source versions, JSON records, listings, published tiles, upload forms.

One boto3 client per process, built lazily and reused across warm
invocations, with botocore's adaptive retry mode (so 503 SlowDown and
throttling are retried with backoff). The published files go up through the
AWS Common Runtime's native client instead (``native_uploads``: a fraction of
botocore's CPU per request, with the standard retry mode), at most
``UPLOAD_WORKERS`` at a time. ``AWS_ENDPOINT_URL`` is honoured by both, so any
S3-compatible endpoint (the local demo's, MinIO ...) works unchanged.
"""

from __future__ import annotations

import functools
import json
import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from awscrt.exceptions import AwsCrtError
from awscrt.s3 import S3ResponseError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.errors import SourceGone, TransientError
from app.model import SourceRef
from app.storage.native_uploads import NativeUploader

log = logging.getLogger(__name__)
TILE_CACHE = "public, max-age=86400"
DESCRIPTOR_CACHE = "public, max-age=300"  # short: a re-upload republishes them
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_PRECONDITION = {"412", "PreconditionFailed", "ConditionalRequestConflict"}


class PreconditionFailed(Exception):
    """A conditional write lost: someone else wrote first (or the object changed)."""


class InvalidToken(ValueError):
    """A listing's continuation token that S3 did not issue: the client's fault, not S3's."""


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def _config(workers: int) -> Config:
    """The client's pool holds every thread of ``thread_pool`` plus a few for records and fetches."""
    return Config(
        retries={"mode": "adaptive", "max_attempts": 8},
        max_pool_connections=workers + 8,
        connect_timeout=10,
        read_timeout=60,
    )


@functools.cache
def client(workers: int):
    """One client per process."""
    return _session().client("s3", config=_config(workers))


@functools.cache
def form_signer(region: str, endpoint: str):
    """The client that signs browser upload forms: SigV4, which every bucket accepts (new ones refuse SigV2).

    On AWS it posts to the bucket's regional virtual-hosted endpoint: the
    global one answers a new bucket outside us-east-1 with redirects, which
    break the browser's CORS preflight. Any other endpoint the store's client
    was given (``AWS_ENDPOINT_URL``: the local demo's, MinIO) is kept, path-style.
    """
    aws = _session().client("s3", region_name=region, config=Config(ignore_configured_endpoint_urls=True))
    if endpoint == aws.meta.endpoint_url:
        return _session().client(
            "s3",
            region_name=region,
            config=Config(
                signature_version="s3v4",
                ignore_configured_endpoint_urls=True,
                s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
            ),
        )
    return _session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@functools.cache
def uploader(workers: int) -> NativeUploader:
    """One native uploader per process, shared by concurrent jobs: at most ``workers`` PUTs in flight."""
    return NativeUploader(_session(), _config(workers), workers)


@functools.cache
def thread_pool(workers: int) -> ThreadPoolExecutor:
    """For many boto3 calls at once (``put_sources``, a collection's batches); bounded, so connections never outnumber
    the client's pool."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3")


class S3Storage:
    """S3 for one job. Counts its requests by S3's two price tiers, for the job's cost."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.s3 = client(workers)
        self.requests = {"write": 0, "read": 0}  # PUT/COPY/POST/LIST, and GET/HEAD
        self._lock = threading.Lock()

    def count(self, tier: str) -> None:
        with self._lock:
            self.requests[tier] += 1

    # Sources -------------------------------------------------------------------------------
    def head(self, ref: SourceRef) -> SourceRef:
        """The object's current version; raises SourceGone when it no longer exists."""
        self.count("read")
        with classified(ref):
            answer = self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
        return SourceRef(ref.bucket, ref.key, answer["ETag"].strip('"'), answer["ContentLength"])

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(SourceRef(bucket, key))
        except SourceGone:
            return False
        return True

    def fetch(self, ref: SourceRef, target: Path, on_bytes: Callable[[int], None] | None = None) -> Path:
        """Download exactly version ``ref.etag`` (If-Match), streaming to ``target``."""
        self.count("read")
        with classified(ref):
            answer = self.s3.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=ref.etag)
            with target.open("wb") as out:
                for chunk in answer["Body"].iter_chunks(chunk_size=1 << 20):
                    out.write(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
        return target

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            self.count("write")
            with classified():
                answer = self.s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
                )
            refused = answer.get("Errors") or []  # S3 answers 200 and lists each key it did not delete
            if refused:
                first = refused[0]
                raise TransientError(
                    f"S3 did not delete {len(refused)} of {len(keys[start : start + 1000])} objects in {bucket}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        yield from (key for key, _ in self.list_objects(bucket, prefix))

    def list_objects(self, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, ETag) of every object under ``prefix``."""
        with classified():
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                self.count("write")
                yield from ((item["Key"], item["ETag"].strip('"')) for item in page.get("Contents", []))

    def read_text(self, bucket: str, key: str) -> str:
        self.count("read")
        with classified(SourceRef(bucket, key)):
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")

    def put_bytes(self, bucket: str, key: str, body: bytes, cache_control: str = DESCRIPTOR_CACHE) -> None:
        self.count("write")
        with classified():
            self.s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type(key), CacheControl=cache_control
            )

    def put_media(self, bucket: str, key: str, body: bytes, media_type: str, cache_control: str) -> None:
        """``put_bytes`` with the media type given, as ``mimetypes`` may not know one (``.webp`` before Python 3.13)."""
        self.count("write")
        with classified():
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=media_type, CacheControl=cache_control)

    def list_page(self, bucket: str, prefix: str, token: str | None, size: int) -> tuple[list[str], str | None]:
        """One page of keys under ``prefix`` and the continuation token of the next (None at the end)."""
        self.count("write")
        with classified():
            try:
                answer = self.s3.list_objects_v2(
                    Bucket=bucket, Prefix=prefix, MaxKeys=size, **({"ContinuationToken": token} if token else {})
                )
            except ClientError as error:
                if token and error.response.get("Error", {}).get("Code") == "InvalidArgument":
                    raise InvalidToken("the page token is not one this listing gave") from None
                raise
        return [item["Key"] for item in answer.get("Contents", [])], answer.get("NextContinuationToken")

    def put_sources(self, bucket: str, files: Iterable[tuple[Path, str]]) -> None:
        """Upload source files (a document's pages) in parallel: each raises its own ObjectCreated event."""
        futures = [thread_pool(self.workers).submit(self._put_source, bucket, path, key) for path, key in files]
        for future in futures:
            future.result()

    def _put_source(self, bucket: str, path: Path, key: str) -> None:
        self.count("write")
        with classified():
            self.s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type(key)})

    def touch(self, bucket: str, key: str, metadata: dict[str, str] | None = None) -> None:
        """Copy an object onto itself: S3 sends a fresh ObjectCreated event, as for a new upload. ``metadata``
        replaces the object's user metadata (a collection's note of which batch awaits the image)."""
        self.count("write")
        with classified(SourceRef(bucket, key)):
            self.s3.copy_object(
                Bucket=bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata=metadata or {"tiler-retry": "1"},
            )

    def metadata_of(self, bucket: str, key: str) -> dict[str, str]:
        """An object's user metadata (one HEAD); raises SourceGone when it no longer exists."""
        self.count("read")
        with classified(SourceRef(bucket, key)):
            return self.s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})

    def read_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """An object's bytes in one GET (a published tile, a CSV), refused (ValueError) past ``max_bytes`` before
        its body is read."""
        self.count("read")
        with classified(SourceRef(bucket, key)):
            answer = self.s3.get_object(Bucket=bucket, Key=key)
            if max_bytes is not None and answer["ContentLength"] > max_bytes:
                answer["Body"].close()
                raise ValueError(f"{answer['ContentLength'] / 2**20:.1f} MB, over the {max_bytes // 2**20} MB limit")
            return answer["Body"].read()

    def presigned_upload(self, bucket: str, key: str, media_type: str, max_bytes: int, seconds: int) -> dict[str, Any]:
        """A presigned POST: the browser sends the file straight to S3, however large.

        S3 itself refuses any other key, a size outside 1..``max_bytes``, any
        other ``Content-Type`` field and a POST begun after ``seconds``.
        """
        signer = form_signer(self.s3.meta.region_name, self.s3.meta.endpoint_url)
        return signer.generate_presigned_post(
            bucket,
            key,
            Fields={"Content-Type": media_type},
            Conditions=[{"Content-Type": media_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=seconds,
        )

    # JSON records ----------------------------------------------------------------------------
    def get_json(self, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
        """(document, etag), or None when there is none."""
        self.count("read")
        try:
            with classified():
                answer = self.s3.get_object(Bucket=bucket, Key=key)
                return json.loads(answer["Body"].read()), answer["ETag"]
        except SourceGone:
            return None

    def put_json(
        self, bucket: str, key: str, document: dict[str, Any], *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        """Write a JSON document; ``create_only``/``if_match`` make it a conditional write. Returns the ETag."""
        conditions: dict[str, str] = {}
        if create_only:
            conditions["IfNoneMatch"] = "*"
        if if_match:
            conditions["IfMatch"] = if_match
        self.count("write")
        with classified():
            answer = self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=json.dumps(document, default=str).encode(),
                ContentType="application/json",
                CacheControl="no-cache",
                **conditions,
            )
        return answer["ETag"]

    def delete(self, bucket: str, key: str) -> None:
        self.count("write")
        with classified():
            self.s3.delete_object(Bucket=bucket, Key=key)


def content_type(key: str) -> str:
    """Media types viewers check: IIIF JSON-LD with its profile, Deep Zoom XML, JPEG tiles."""
    if key.endswith("/info.json"):
        return 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    if key.endswith(("/manifest.json", "/collection.json")):
        return 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
    if key.endswith(".dzi"):
        return "application/xml"
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class classified:
    """Turn botocore's and the native uploader's failures into this project's errors: gone, lost race, or transient."""

    def __init__(self, ref: SourceRef | None = None) -> None:
        self.ref = ref

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _tb) -> bool:
        if isinstance(error, ClientError):
            self._answered(
                str(error.response.get("Error", {}).get("Code", "")),
                str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")),
                error,
            )
        if isinstance(error, S3ResponseError):
            self._answered(_error_code(error.body), str(error.status_code), error)
        if isinstance(error, (BotoCoreError, AwsCrtError)):
            raise TransientError(f"S3 unreachable: {error}") from error
        return False

    def _answered(self, code: str, status: str, error: Exception) -> None:
        if code in _NOT_FOUND or status == "404":
            where = f"s3://{self.ref.bucket}/{self.ref.key}" if self.ref else "object"
            raise SourceGone(f"{where} does not exist (deleted?)") from None
        if code in _PRECONDITION or status == "412":
            raise PreconditionFailed(code) from None
        raise TransientError(f"S3 {code or status}: {error}") from error


def _error_code(body: bytes | None) -> str:
    """The ``<Code>`` of an S3 error document ("" when there is none)."""
    match = re.search(rb"<Code>([^<]*)</Code>", body or b"")
    return match.group(1).decode(errors="replace") if match else ""
