"""Publishing a conversion to S3, phase by phase (``Conversion.phases``), with tiles uploaded while it is made.

Each phase goes up in parallel through the AWS Common Runtime's native client
(``native_uploads``) and lands whole before the next begins, so a crash at any
point never leaves a descriptor pointing at missing tiles. Tiles handed over
early (``EarlyTiles``, a ``convert`` ``on_tile``) join the tiles phase.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import as_completed, wait
from pathlib import Path

from app.errors import TilerError
from app.model import Conversion, Phase
from app.storage.native_uploads import Upload
from app.storage.s3 import (
    DESCRIPTOR_CACHE,
    TILE_CACHE,
    S3Storage,
    classified,
    content_type,
    uploader,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
CACHE_CONTROL = {"tiles": TILE_CACHE, "descriptors": DESCRIPTOR_CACHE, "metadata": "no-cache"}
DISCARD_PATIENCE_SECONDS = 10.0  # how long discarding early tiles waits for the PUTs in flight before stopping them


class Publisher:
    """Publishes conversions to a tiles and a metadata bucket; its uploads count in ``storage.requests``."""

    def __init__(self, storage: S3Storage, tiles_bucket: str, metadata_bucket: str) -> None:
        self.storage = storage
        self.buckets = {"tiles": tiles_bucket, "metadata": metadata_bucket}

    def early_tiles(self) -> EarlyTiles:
        """A place to upload tiles while the conversion still runs; hand it to ``publish``."""
        return EarlyTiles(self)

    def upload(self, path: Path, destination: str, key: str, cache_control: str) -> Upload:
        """Start uploading one staged file; the upload's result is its size in bytes."""
        self.storage.count("write")
        headers = {"Content-Type": content_type(key), "Cache-Control": cache_control}
        return uploader(self.storage.workers).put_file(path, self.buckets[destination], key, headers)

    def publish(
        self, conversion: Conversion, on_progress: Progress | None = None, early: EarlyTiles | None = None
    ) -> int:
        """Upload every phase in order; tiles already sent through ``early`` are waited for, not sent again.
        Returns the bytes written."""
        counter = _Counter(conversion.object_count, on_progress)
        sent = early.take() if early else {}
        for phase in conversion.phases():
            futures = [*(sent.values() if phase.name == "tiles" else ()), *self._start(phase, sent)]
            try:
                for future in as_completed(futures):  # the whole phase lands (or fails) before the next begins
                    with classified():
                        counter.add(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return counter.bytes

    def _start(self, phase: Phase, sent: dict[str, Upload]) -> list[Upload]:
        return [
            self.upload(Path(staged), phase.destination, key, CACHE_CONTROL[phase.name])
            for staged, key in phase.files
            if key not in sent
        ]


class EarlyTiles:
    """Tiles uploaded while the conversion is still running (``add`` is a ``convert`` ``on_tile``).

    Until ``publish`` takes them, they are not published: no descriptor points
    at them yet. If the job fails or is handed to Batch before then, leaving
    the ``with`` block (or ``discard``) deletes whatever landed, so nothing of
    an unfinished job stays in the tiles bucket.
    """

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def add(self, path: Path, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._uploads[key] = self._publisher.upload(path, "tiles", key, TILE_CACHE)

    def take(self) -> dict[str, Upload]:
        """key -> upload, for ``publish``; from now on they are its business."""
        with self._lock:
            uploads, self._uploads = self._uploads, {}
        return uploads

    def discard(self, patience: float = DISCARD_PATIENCE_SECONDS) -> None:
        """Let the uploads settle, then delete every key they were for (best effort).

        Stopping a PUT on our side does not stop one S3 has already received, which could then land after the
        delete. So the uploads (nearly all done by now) are waited for, up to ``patience`` seconds, and only those
        still running then are stopped. Every key is deleted: a PUT that failed on our side may have landed too.
        """
        uploads = self.take()
        running = wait(uploads.values(), timeout=patience).not_done
        for upload in running:
            upload.cancel()
        wait(running)
        try:
            self._publisher.storage.delete_keys(self._publisher.buckets["tiles"], uploads)
        except TilerError as error:
            log.warning("could not delete %d early tiles of an unfinished job: %s", len(uploads), error)

    def __enter__(self) -> EarlyTiles:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.discard()


class _Counter:
    """Thread-safe count of uploaded objects and bytes, reported to ``on_progress``."""

    def __init__(self, total: int, on_progress: Progress | None) -> None:
        self.total, self.done, self.bytes = total, 0, 0
        self._lock = threading.Lock()
        self._on_progress = on_progress

    def add(self, size: int) -> None:
        with self._lock:
            self.done += 1
            self.bytes += size
            done = self.done
        if self._on_progress:
            self._on_progress(done, self.total)
