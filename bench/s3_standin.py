"""A fast S3 stand-in for the benchmark: in-memory objects, a fixed latency per request, no throughput cap.

The moto server the tests use applies requests one at a time and manages
about 95 PUTs/s on a 2-core machine, which hides what parallel publishing is
worth. Real S3 is the opposite: each request takes tens of milliseconds, but
thousands run side by side. This server models that: every request sleeps
``latency`` seconds (in its own connection thread, so requests overlap) and
then answers from a dict under a lock.

It speaks just enough of the S3 REST API, path-style (boto3 uses path style
for an IP endpoint), for the upload -> event handler -> publish flow:
CreateBucket (and bucket sub-resources such as ``?cors``: accepted, ignored),
PutObject with ``If-None-Match: *`` / ``If-Match`` (412), CopyObject, GetObject
(``If-Match``), HeadObject, DeleteObject, ListObjectsV2 (prefix, max-keys,
continuation-token) and DeleteObjects. Not S3: ``POST /__reset`` forgets
everything, ``GET /__stats`` returns the request counts by method as JSON.

Run alone: ``python bench/s3_standin.py [--port P] [--latency-ms 25]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import threading
import time
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


@dataclass
class _Object:
    body: bytes
    etag: str  # quoted, as S3 sends it
    modified: float
    headers: dict[str, str] = field(default_factory=dict)  # content-type, cache-control, x-amz-meta-*


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, _Object]] = {}
        self.requests: dict[str, int] = {}


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
                store.requests.clear()
            self._reply(204)
        elif method == "GET" and name == "__stats":
            with store.lock:
                stats = dict(store.requests)
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
            elif method == "PUT":
                status, answer, headers = self._put(objects, key, body)
            elif method in ("GET", "HEAD"):
                status, answer, headers = self._get(objects, key)
            elif method == "DELETE":
                objects.pop(key, None)
                status, answer, headers = 204, b"", {}
            else:
                status, answer, headers = 405, _error("MethodNotAllowed", method), {}
        if method == "HEAD" and status == 200:
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

    def _put(self, objects: dict[str, _Object], key: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """PutObject or CopyObject; called with the store's lock held, so conditions and writes are atomic."""
        current = objects.get(key)
        if self.headers.get("If-None-Match") == "*" and current is not None:
            return (
                412,
                _error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
                {},
            )
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            if current is None:
                return 404, _error("NoSuchKey", key), {}
            if if_match.strip() not in (current.etag, current.etag.strip('"')):
                return (
                    412,
                    _error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
                    {},
                )
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() in _KEPT_HEADERS or name.lower().startswith("x-amz-meta-")
        }
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
            return (
                412,
                _error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
                {},
            )
        headers = {
            "Content-Type": "binary/octet-stream",
            **{_title(n): v for n, v in current.headers.items()},
            "ETag": current.etag,
            "Last-Modified": formatdate(current.modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        return 200, current.body, headers


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
    args = parser.parse_args()
    with StandInS3(args.latency_ms / 1000, args.port) as standin:
        print(f"S3 stand-in on {standin.url} ({args.latency_ms:g} ms per request); Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
