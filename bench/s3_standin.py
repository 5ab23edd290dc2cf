"""A fast S3 stand-in for the benchmark: in-memory objects, a fixed latency per request, no throughput cap.

The moto server the tests use applies requests one at a time and manages
about 95 PUTs/s on a 2-core machine, which hides what parallel publishing is
worth. Real S3 is the opposite: each request takes tens of milliseconds, but
thousands run side by side. This server models that: every request sleeps
``latency`` seconds (in its own connection thread, so requests overlap) and
then answers from a dict under a lock.

It speaks just enough of the S3 REST API, path-style (boto3 uses path style
for an IP endpoint), for the upload -> event handler -> publish flow and the
dynamic endpoint's ranged reads: CreateBucket (and bucket sub-resources such
as ``?cors``: accepted, ignored), PutObject with ``If-None-Match: *`` /
``If-Match`` (412), CopyObject, GetObject and HeadObject (``If-Match``;
``Range: bytes=a-b``, ``a-`` or ``-n`` answered 206 with ``Content-Range``,
416 when unsatisfiable), DeleteObject, ListObjectsV2 (prefix, max-keys,
continuation-token), DeleteObjects, and multipart uploads (create, upload
part, complete with S3's rules: parts in ascending order, each but the last at
least 5 MiB, the ``md5-of-md5s-N`` ETag; abort). Every request, a part too,
pays the same latency. Not S3: ``POST /__reset`` forgets everything,
``GET /__stats`` returns the request counts by method and the object bytes
sent (``bytes_out``) as JSON.

Run alone: ``python bench/s3_standin.py [--port P] [--latency-ms 25] [--until-stdin-closes]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

_REPOSITORY = str(Path(__file__).resolve().parent.parent)
if _REPOSITORY not in sys.path:  # run alone: app/ is in the repository above bench/
    sys.path.insert(0, _REPOSITORY)
from tooling.local_s3 import LocalServer  # noqa: E402

_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
_KEPT_HEADERS = ("content-type", "cache-control", "content-encoding", "content-disposition")
_MIN_PART_BYTES = 5 * 2**20  # S3's minimum for every part but the last
_MAX_PARTS = 10_000
_PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message>"
    b"<RequestId>standin</RequestId></Error>"
)


@dataclass
class _Object:
    body: bytes
    etag: str  # quoted, as S3 sends it
    modified: float
    headers: dict[str, str] = field(default_factory=dict)  # content-type, cache-control, x-amz-meta-*


@dataclass
class _Upload:
    """A multipart upload in progress: where it goes, its headers, its parts so far (number -> (etag, body))."""

    bucket: str
    key: str
    headers: dict[str, str]
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, _Object]] = {}
        self.uploads: dict[str, _Upload] = {}
        self.requests: dict[str, int] = {}
        self.bytes_out = 0  # object bytes sent by GETs (whole or ranged): what readers fetched


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so boto3's pool reuses connections; answers 100-continue itself
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would hold the second back
    server: _Server

    # http.server plumbing ------------------------------------------------------------------
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._reply(501, _error("NotImplemented", "chunked request bodies are not supported"))
            return
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        bucket, _, key = parts.path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(key)
        if bucket.startswith("__"):
            self._control(method, bucket)
            return
        with self.server.store.lock:
            self.server.store.requests[method] = self.server.store.requests.get(method, 0) + 1
        time.sleep(self.server.latency)  # the service time of one request; requests overlap across connections
        try:
            self._s3(method, bucket, key, query, body)
        except ElementTree.ParseError as error:
            self._reply(400, _error("MalformedXML", str(error)))

    def _reply(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, length: int | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("x-amz-request-id", "standin")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _control(self, method: str, name: str) -> None:
        store = self.server.store
        if method == "POST" and name == "__reset":
            with store.lock:
                store.buckets.clear()
                store.uploads.clear()
                store.requests.clear()
                store.bytes_out = 0
            self._reply(204)
        elif method == "GET" and name == "__stats":
            with store.lock:
                stats = {**store.requests, "bytes_out": store.bytes_out}
            self._reply(200, json.dumps(stats).encode(), {"Content-Type": "application/json"})
        else:
            self._reply(404, _error("NoSuchControl", name))

    # S3 ----------------------------------------------------------------------------------------
    def _s3(self, method: str, bucket: str, key: str, query: dict[str, str], body: bytes) -> None:
        store = self.server.store
        if not bucket:
            self._reply(
                200,
                _xml(
                    "ListAllMyBucketsResult",
                    "<Buckets>"
                    + "".join(f"<Bucket><Name>{escape(b)}</Name></Bucket>" for b in sorted(store.buckets))
                    + "</Buckets>",
                ),
            )
            return
        if not key:
            self._bucket(method, bucket, query, body)
            return
        with store.lock:
            objects = store.buckets.get(bucket)
            if objects is None:
                status, answer, headers = 404, _error("NoSuchBucket", bucket), {}
            elif "uploads" in query or "uploadId" in query:
                status, answer, headers = self._multipart(method, bucket, key, query, body)
            elif method == "PUT":
                status, answer, headers = self._put(objects, key, body)
            elif method in ("GET", "HEAD"):
                status, answer, headers = self._get(objects, key)
                if method == "GET" and status in (200, 206):
                    store.bytes_out += len(answer)
            elif method == "DELETE":
                objects.pop(key, None)
                status, answer, headers = 204, b"", {}
            else:
                status, answer, headers = 405, _error("MethodNotAllowed", method), {}
        if method == "HEAD" and status in (200, 206):
            self._reply(status, answer, headers, length=len(answer))
        else:
            self._reply(status, b"" if method == "HEAD" else answer, headers)

    def _bucket(self, method: str, bucket: str, query: dict[str, str], body: bytes) -> None:
        store = self.server.store
        with store.lock:
            objects = store.buckets.get(bucket)
            if method == "PUT":  # CreateBucket, or a sub-resource (?cors, ?policy, ...): accepted and ignored
                if not query:
                    store.buckets.setdefault(bucket, {})
                self._reply(200, headers={"Location": f"/{bucket}"})
                return
            if objects is None:
                self._reply(404, _error("NoSuchBucket", bucket))
                return
            if method == "HEAD":
                self._reply(200)
            elif method == "GET" and query.get("list-type") == "2":
                self._reply(200, _list_v2(bucket, objects, query))
            elif method == "POST" and "delete" in query:
                self._reply(200, _delete_many(objects, body))
            elif method == "DELETE":
                if objects:
                    self._reply(409, _error("BucketNotEmpty", bucket))
                else:
                    del store.buckets[bucket]
                    self._reply(204)
            else:
                self._reply(501, _error("NotImplemented", f"{method} ?{'&'.join(query)} on a bucket"))

    def _write_refused(self, current: _Object | None, key: str) -> tuple[int, bytes, dict[str, str]] | None:
        """The answer to a write whose ``If-None-Match: *`` or ``If-Match`` does not hold, else None."""
        if self.headers.get("If-None-Match") == "*" and current is not None:
            return 412, _PRECONDITION_FAILED, {}
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            if current is None:
                return 404, _error("NoSuchKey", key), {}
            if if_match.strip() not in (current.etag, current.etag.strip('"')):
                return 412, _PRECONDITION_FAILED, {}
        return None

    def _kept_headers(self) -> dict[str, str]:
        return {
            name: value
            for name, value in self.headers.items()
            if name.lower() in _KEPT_HEADERS or name.lower().startswith("x-amz-meta-")
        }

    def _put(self, objects: dict[str, _Object], key: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """PutObject or CopyObject; called with the store's lock held, so conditions and writes are atomic."""
        refused = self._write_refused(objects.get(key), key)
        if refused:
            return refused
        headers = self._kept_headers()
        source = self.headers.get("x-amz-copy-source")
        if source is not None:
            src_bucket, _, src_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
            original = self.server.store.buckets.get(src_bucket, {}).get(src_key)
            if original is None:
                return 404, _error("NoSuchKey", src_key), {}
            if self.headers.get("x-amz-metadata-directive", "COPY").upper() == "COPY":
                headers = dict(original.headers)
            body = original.body
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        modified = time.time()
        objects[key] = _Object(body, etag, modified, headers)
        if source is not None:
            return (
                200,
                _xml("CopyObjectResult", f"<LastModified>{_iso(modified)}</LastModified><ETag>{escape(etag)}</ETag>"),
                {},
            )
        return 200, b"", {"ETag": etag}

    def _get(self, objects: dict[str, _Object], key: str) -> tuple[int, bytes, dict[str, str]]:
        current = objects.get(key)
        if current is None:
            return 404, _error("NoSuchKey", key), {}
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in (current.etag, current.etag.strip('"')):
            return 412, _PRECONDITION_FAILED, {}
        headers = {
            "Content-Type": "binary/octet-stream",
            **{_title(n): v for n, v in current.headers.items()},
            "ETag": current.etag,
            "Last-Modified": formatdate(current.modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        size = len(current.body)
        wanted = self.headers.get("Range")
        if wanted is None:
            return 200, current.body, headers
        span = byte_range(wanted, size)
        if span is None:  # S3 ignores a Range header it cannot parse and sends the whole object
            return 200, current.body, headers
        if span == ():
            return (
                416,
                _error("InvalidRange", "The requested range is not satisfiable"),
                {"Content-Range": f"bytes */{size}"},
            )
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return 206, current.body[first : last + 1], headers

    def _multipart(
        self, method: str, bucket: str, key: str, query: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload (lock held)."""
        store = self.server.store
        if method == "POST" and "uploads" in query:
            upload_id = uuid.uuid4().hex
            store.uploads[upload_id] = _Upload(bucket, key, self._kept_headers())
            return (
                200,
                _xml(
                    "InitiateMultipartUploadResult",
                    f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId>",
                ),
                {},
            )
        upload = store.uploads.get(query.get("uploadId", ""))
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            return 404, _error("NoSuchUpload", "The specified upload does not exist"), {}
        if method == "PUT" and "partNumber" in query:
            number = int(query["partNumber"]) if query["partNumber"].isdigit() else 0
            if not 1 <= number <= _MAX_PARTS:
                return 400, _error("InvalidArgument", "Part number must be an integer between 1 and 10000"), {}
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            upload.parts[number] = (etag, body)
            return 200, b"", {"ETag": etag}
        if method == "DELETE":
            del store.uploads[query["uploadId"]]
            return 204, b"", {}
        if method == "POST":
            return self._complete(query["uploadId"], upload, body)
        return 405, _error("MethodNotAllowed", f"{method} on an upload"), {}

    def _complete(self, upload_id: str, upload: _Upload, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Assemble the listed parts as S3 does: ascending numbers, known ETags, all but the last >= 5 MiB."""
        root = ElementTree.fromstring(body)
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        listed = [
            (int(part.findtext(f"{ns}PartNumber") or 0), (part.findtext(f"{ns}ETag") or "").strip())
            for part in root.findall(f"{ns}Part")
        ]
        if not listed:
            return 400, _error("MalformedXML", "CompleteMultipartUpload lists no parts"), {}
        numbers = [number for number, _ in listed]
        if numbers != sorted(set(numbers)):
            return 400, _error("InvalidPartOrder", "The list of parts was not in ascending order"), {}
        chunks = []
        for index, (number, etag) in enumerate(listed):
            stored = upload.parts.get(number)
            if stored is None or etag.strip('"') != stored[0].strip('"'):
                return 400, _error("InvalidPart", f"part {number} was not uploaded or its ETag does not match"), {}
            if index < len(listed) - 1 and len(stored[1]) < _MIN_PART_BYTES:
                return 400, _error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed"), {}
            chunks.append(stored[1])
        objects = self.server.store.buckets[upload.bucket]
        refused = self._write_refused(objects.get(upload.key), upload.key)
        if refused:
            return refused
        digests = b"".join(hashlib.md5(chunk).digest() for chunk in chunks)
        etag = f'"{hashlib.md5(digests).hexdigest()}-{len(chunks)}"'
        objects[upload.key] = _Object(b"".join(chunks), etag, time.time(), upload.headers)
        del self.server.store.uploads[upload_id]
        return (
            200,
            _xml(
                "CompleteMultipartUploadResult",
                f"<Bucket>{escape(upload.bucket)}</Bucket><Key>{escape(upload.key)}</Key><ETag>{escape(etag)}</ETag>",
            ),
            {},
        )


def byte_range(header: str, size: int) -> tuple[int, int] | tuple[()] | None:
    """A ``Range`` header as (first, last) inclusive, clipped to ``size``; () when unsatisfiable; None when it is
    not one ``bytes=`` range (S3 then sends the whole object)."""
    unit, _, spec = header.strip().partition("=")
    first_text, dash, last_text = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return None
    if not (first_text.isdigit() or first_text == "") or not (last_text.isdigit() or last_text == ""):
        return None
    if first_text == "":  # the last n bytes
        if last_text == "":
            return None
        count = int(last_text)
        return (max(0, size - count), size - 1) if count > 0 and size > 0 else ()
    first = int(first_text)
    last = size - 1 if last_text == "" else min(int(last_text), size - 1)
    if last_text != "" and int(last_text) < first:
        return None
    return (first, last) if first < size else ()


def _list_v2(bucket: str, objects: dict[str, _Object], query: dict[str, str]) -> bytes:
    prefix = query.get("prefix", "")
    max_keys = min(int(query.get("max-keys") or 1000), 1000)
    after = query.get("start-after", "")
    token = query.get("continuation-token")
    if token:
        after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
    keys = sorted(k for k in objects if k.startswith(prefix) and k > after)
    page, truncated = keys[:max_keys], len(keys) > max_keys
    contents = "".join(
        f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(objects[k].modified)}</LastModified>"
        f"<ETag>{escape(objects[k].etag)}</ETag><Size>{len(objects[k].body)}</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
        for k in page
    )
    extra = f"<ContinuationToken>{escape(token)}</ContinuationToken>" if token else ""
    if truncated:
        extra += (
            f"<NextContinuationToken>{base64.urlsafe_b64encode(page[-1].encode()).decode()}</NextContinuationToken>"
        )
    return _xml(
        "ListBucketResult",
        f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
        f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{extra}{contents}",
    )


def _delete_many(objects: dict[str, _Object], body: bytes) -> bytes:
    root = ElementTree.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    quiet = (root.findtext(f"{ns}Quiet") or "").strip().lower() == "true"
    deleted = []
    for item in root.findall(f"{ns}Object"):
        key = item.findtext(f"{ns}Key") or ""
        objects.pop(key, None)
        deleted.append(key)
    listing = "" if quiet else "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in deleted)
    return _xml("DeleteResult", listing)


def _xml(root: str, inner: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{_XMLNS}">{inner}</{root}>'.encode()


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message><RequestId>standin</RequestId></Error>"
    ).encode()


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _title(header: str) -> str:
    return header if header.lower().startswith("x-amz-") else "-".join(p.capitalize() for p in header.split("-"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 32+ pool connections open at once; the default backlog of 5 would drop SYNs
    store: _Store
    latency: float

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a reader that got what it wanted) is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class StandInS3(LocalServer):
    """The stand-in on 127.0.0.1, served from a background thread: ``with StandInS3(0.025) as s3: s3.url``."""

    def __init__(self, latency_seconds: float = 0.025, port: int = 0) -> None:
        server = _Server(("127.0.0.1", port), _Handler)
        server.store = _Store()
        server.latency = latency_seconds
        self.latency = latency_seconds
        super().__init__(server, "s3-standin")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A fast in-memory S3 stand-in with a fixed per-request latency.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument(
        "--until-stdin-closes", action="store_true", help="stop when standard input closes (as a benchmark's child)"
    )
    args = parser.parse_args()
    with StandInS3(args.latency_ms / 1000, args.port) as standin:
        print(f"S3 stand-in on {standin.url} ({args.latency_ms:g} ms per request); Ctrl-C to stop", flush=True)
        try:
            if args.until_stdin_closes:
                sys.stdin.read()
            else:
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
