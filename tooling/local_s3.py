"""An embedded S3 endpoint (a moto server on 127.0.0.1) for the demo and the tests.

Requests are handled on many connections but applied one at a time, so S3's
conditional writes (If-None-Match, If-Match) are atomic here as they are on
AWS; moto checks and writes in two steps and would otherwise let a race in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Self

import requests
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}


class LocalServer:
    """An HTTP server on 127.0.0.1, served from a daemon thread for the length of a ``with`` block.

    What the embedded S3 endpoints share: this moto server and the benchmark's stand-in.
    """

    def __init__(self, server: Any, thread_name: str) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name=thread_name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def environment(self) -> dict[str, str]:
        """What boto3 needs to talk to this endpoint instead of AWS."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class LocalS3(LocalServer):
    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        app = self._serialised(DomainDispatcherApplication(create_backend_app))
        super().__init__(make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler), "local-s3")

    def reset(self) -> None:
        """Forget every bucket, queue and job (between tests)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def _serialised(self, app: Callable) -> Callable:
        def locked(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
            with self._lock:
                return list(app(environ, start_response))

        return locked
