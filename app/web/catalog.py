"""What the dashboard reads and asks for: job records page by page, metadata, retries, withdrawals, uploads.

Listing reads ``jobs/`` (or ``index/STATUS/``) one page at a time with S3
continuation tokens and fetches that page's records in parallel, so 10,000
images cost the same per page as 10; tiles are never listed.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import re
import secrets
import socket
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from app import records, takedown
from app.collection import runner as collection_runner
from app.errors import SourceGone, TransientError
from app.events import SUBSCRIBERS
from app.ids import image_id_for
from app.model import SourceRef, Status
from app.storage.s3 import InvalidToken, S3Storage
from config import Settings

STATUSES = (
    Status.RUNNING,
    Status.QUEUED,
    Status.PAGES,
    Status.RETRYING,
    Status.DONE,
    Status.FAILED,
    Status.GONE,
    Status.WITHDRAWN,
)
MAX_NAME_BYTES = 255  # what file systems allow
MAX_KEY_BYTES = 1024  # what S3 allows
KEY_ATTEMPTS = 3  # random suffixes tried; a taken one is a 1 in 4 billion chance
# Unicode categories refused in upload names: controls (NUL, tab ...), format characters (U+200E/F, U+202A-E,
# U+2066-9 ...), surrogates, and the line and paragraph separators.
HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{1,2048}")


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

    def _listed(
        self, prefix: str, suffix: str, token: str | None, read: Callable[[str], dict[str, Any] | None]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One S3 page of keys ``prefix + NAME + suffix``, each NAME read in parallel; nothing found is left out."""
        if token and not _TOKEN.fullmatch(token):  # S3's tokens are base64; anything else is refused before S3
            raise InvalidToken("the page token is not one this listing gave")
        keys, next_token = self.store.list_page(self.settings.metadata_bucket, prefix, token, self.settings.page_size)
        with ThreadPoolExecutor(max_workers=16) as pool:
            found = pool.map(read, (key[len(prefix) :].removesuffix(suffix) for key in keys))
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
        """Free the job's claim and re-send its source through the normal event path (for a withdrawn image
        whose source was kept: publish it again)."""
        record = self.record(image_id)
        if record is None:
            raise CannotRetry("no such image")
        stalled = records.age_seconds(record.get("updated_at")) > self.settings.stale_after_seconds
        if record["status"] not in (Status.FAILED, Status.RETRYING, Status.GONE, Status.WITHDRAWN) and not (
            record["status"] in (Status.RUNNING, Status.QUEUED, Status.PAGES) and stalled
        ):
            raise CannotRetry(f"the job is {record['status']}; only failed or stalled jobs can be retried")
        source = record["source"]
        self.store.delete(self.settings.metadata_bucket, records.claim_key(image_id))
        self.store.touch(source["bucket"], source["key"])

    def published_objects(self, image_id: str) -> int:
        """How many objects of the image the tiles bucket holds (what a withdrawal deletes there)."""
        return len(takedown.published_keys(self.store, self.settings.tiles_bucket, image_id))

    def withdraw(self, image_id: str, by: str, reason: str) -> dict[str, Any] | None:
        """Take the image down everywhere (its source stays); returns its record, None for no such image.

        Raises ``takedown.ImageBusy`` while a conversion of the image runs.
        """
        owner = f"dashboard:{socket.gethostname()}:{os.getpid()}/{secrets.token_hex(4)}"
        # collections and documents hear of it, as when a source is deleted
        return takedown.withdraw(self.settings, image_id, by, reason, owner, SUBSCRIBERS)

    def upload_form(self, filename: str, media_type: str = "", size: int | None = None) -> dict[str, Any]:
        """Where and how the browser posts one file: a presigned POST for a fresh key under UPLOAD_PREFIX.

        ValueError (a 400) for a name, media type or size the form would not
        be signed for; ``size`` is only checked early, S3 enforces the limit.
        """
        name = upload_name(filename)
        media_type = (media_type.strip() or mimetypes.guess_type(name)[0] or "").lower()
        if media_type not in self.settings.upload_content_types:
            raise ValueError(
                f"{name}: {media_type or 'an unknown media type'} is not accepted (accepted: "
                f"{', '.join(self.settings.upload_content_types)})"
            )
        if size is not None and not 1 <= size <= self.settings.upload_max_bytes:
            raise ValueError(f"{name}: {size} bytes; uploads must be 1 to {self.settings.upload_max_bytes} bytes")
        key = self._fresh_key(name)
        post = self.store.presigned_upload(
            self.settings.source_bucket,
            key,
            media_type,
            self.settings.upload_max_bytes,
            self.settings.upload_form_minutes * 60,
        )
        return {**post, "key": key, "id": image_id_for(key)}

    def _fresh_key(self, name: str) -> str:
        """UPLOAD_PREFIX, the name and a random suffix, checked free with a HEAD.

        Every form gets a key of its own, so two files of the same name dropped
        at once both land, and never an existing one, so no form can overwrite.
        """
        path = PurePosixPath(name)
        for _ in range(KEY_ATTEMPTS):
            key = f"{self.settings.upload_prefix}{path.stem}-{secrets.token_hex(4)}{path.suffix}"
            if len(key.encode()) > MAX_KEY_BYTES:
                raise ValueError(f"{name}: the key {key!r} would be over S3's {MAX_KEY_BYTES} bytes")
            try:
                self.store.head(SourceRef(self.settings.source_bucket, key))
            except SourceGone:
                return key
        raise TransientError(f"no free key for {name} after {KEY_ATTEMPTS} tries")


def upload_name(filename: str) -> str:
    """The file name as it will be stored (NFC, no surrounding space), or ValueError.

    Names are shown to people and become keys and URLs, so nothing that hides
    or reorders characters (controls, bidi and other format characters), leaves
    the upload folder or names a hidden file gets through.
    """
    name = unicodedata.normalize("NFC", filename).strip()
    if not name:
        raise ValueError("a file name is needed")
    hidden = next((char for char in name if unicodedata.category(char) in HIDDEN_CATEGORIES), None)
    if hidden is not None:
        raise ValueError(f"the file name contains U+{ord(hidden):04X}, a control or invisible formatting character")
    if "/" in name or "\\" in name:
        raise ValueError("the file name must not contain / or \\")
    if name.startswith("."):
        raise ValueError("the file name must not start with a dot")
    if "${filename}" in name:  # S3 would replace it with the name the browser sends
        raise ValueError("the file name must not contain ${filename}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"the file name is {len(name.encode())} bytes long; at most {MAX_NAME_BYTES} are allowed")
    return name
