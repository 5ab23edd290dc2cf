"""What the dashboard reads and asks for: job records page by page, metadata, retries, uploads.

Listing reads ``jobs/`` (or ``index/STATUS/``) one page at a time with S3
continuation tokens and fetches that page's records in parallel, so 10,000
images cost the same per page as 10; tiles are never listed.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from app import records
from app.collection import runner as collection_runner
from app.ids import image_id_for
from app.model import SourceRef, Status
from app.storage.s3 import S3Storage
from config import Settings

STATUSES = (Status.RUNNING, Status.QUEUED, Status.RETRYING, Status.DONE, Status.FAILED, Status.GONE)
MAX_UPLOAD_BYTES = 5 * 1024 ** 3  # the largest single POST S3 accepts


class CannotRetry(Exception):
    """The job is not in a state a retry can help (done, or still moving)."""


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_token: str | None


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def store(self) -> S3Storage:  # built on first use, not when the app is created
        return S3Storage(self.settings.upload_workers)

    def page(self, status: str | None, token: str | None) -> Page:
        prefix = records.index_key(status, "") if status else records.RECORDS_PREFIX
        found, next_token = self._listed(prefix, "" if status else ".json", token, self.record)
        # the index may briefly lag a status change: show only what the record itself says
        return Page([r for r in found if not status or r["status"] == status], next_token)

    def collections(self, token: str | None) -> Page:
        return Page(*self._listed(collection_runner.COLLECTIONS_PREFIX, ".json", token, self.collection))

    def _listed(self, prefix: str, suffix: str, token: str | None, read: Callable[[str], dict[str, Any] | None]
                ) -> tuple[list[dict[str, Any]], str | None]:
        """One S3 page of keys ``prefix + NAME + suffix``, each NAME read in parallel; nothing found is left out."""
        keys, next_token = self.store.list_page(self.settings.metadata_bucket, prefix, token, self.settings.page_size)
        with ThreadPoolExecutor(max_workers=16) as pool:
            found = pool.map(read, (key[len(prefix):].removesuffix(suffix) for key in keys))
            return [document for document in found if document], next_token

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        found = self.store.get_json(self.settings.metadata_bucket, collection_runner.collection_key(collection_id))
        return found[0] if found else None

    def record(self, image_id: str) -> dict[str, Any] | None:
        return records.read_record(self.store, self.settings.metadata_bucket, image_id)

    def metadata(self, image_id: str) -> dict[str, Any] | None:
        found = self.store.get_json(self.settings.metadata_bucket, f"{image_id}.json")
        return found[0] if found else None

    def retry(self, image_id: str) -> None:
        """Free the job's claim and re-send its source through the normal event path."""
        record = self.record(image_id)
        if record is None:
            raise CannotRetry("no such image")
        stalled = records.age_seconds(record.get("updated_at")) > self.settings.stale_after_seconds
        if record["status"] not in (Status.FAILED, Status.RETRYING, Status.GONE) and not (
                record["status"] in (Status.RUNNING, Status.QUEUED) and stalled):
            raise CannotRetry(f"the job is {record['status']}; only failed or stalled jobs can be retried")
        source = SourceRef(**{k: record["source"].get(k) for k in ("bucket", "key", "etag", "size")})
        if source.etag:
            self.store.delete(self.settings.metadata_bucket, records.claim_key(image_id, source.etag))
        self.store.touch(source.bucket, source.key)

    def upload_form(self, filename: str) -> dict[str, Any]:
        """Where and how the browser posts one file: the source bucket, under the file's own name."""
        name = PurePosixPath(filename.replace("\\", "/")).name.strip()
        if not name or name.startswith("."):
            raise ValueError("a file name is needed")
        post = self.store.presigned_upload(self.settings.source_bucket, name, MAX_UPLOAD_BYTES)
        return {**post, "key": name, "id": image_id_for(name)}
