"""Image ids: the public name of an image in every URL of the output contract.

An id is derived from the source key: the extension is dropped, every
character outside ``A-Z a-z 0-9 . _ -`` is replaced by ``_``, and ``/`` is kept
so folders in the source bucket stay folders in the tiles bucket.

A document's pages (see ``app.items``) are sources of their own under
``pages/`` in the source bucket: ``pages/ITEM/p0007@VERSION.pdf`` is page 7 of
the item ``ITEM`` as split from the source version ``VERSION``, and its id is
``ITEM/p0007``: stable across versions, in page order when sorted.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_VALID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
MAX_ID_LENGTH = 512
PAGES_PREFIX = "pages/"
_PAGE_KEY = re.compile(r"^pages/(?P<item>.+)/p(?P<number>\d{4,})@(?P<version>[A-Za-z0-9]+)\.[a-z]+$")


def image_id_for(key: str) -> str:
    """Derive the image id from a source key or file name."""
    page = page_of(key)
    if page:
        return page_id(page[0], page[1])
    path = PurePosixPath(key.strip("/"))
    stem = str(path.with_suffix("")) if path.suffix else str(path)
    segments = [_UNSAFE.sub("_", part).lstrip(".") or "_" for part in stem.split("/") if part]
    image_id = "/".join(segments)
    if not image_id:
        raise ValueError(f"cannot derive an image id from {key!r}")
    return image_id[:MAX_ID_LENGTH]


def is_valid_id(image_id: str) -> bool:
    """True for ids this project could have produced (no traversal, no odd characters)."""
    return len(image_id) <= MAX_ID_LENGTH and bool(_VALID.match(image_id))


def page_id(item_id: str, number: int) -> str:
    return f"{item_id}/p{number:04}"


def page_key(item_id: str, number: int, version: str, suffix: str) -> str:
    """Where page ``number`` of the item's source version ``version`` (see ``version_of``) goes."""
    return f"{PAGES_PREFIX}{item_id}/p{number:04}@{version}{suffix}"


def page_of(key: str) -> tuple[str, int, str] | None:
    """(item id, page number, version) of a page's source key; None for any other key."""
    found = _PAGE_KEY.match(key)
    return (found["item"], int(found["number"]), found["version"]) if found else None


def version_of(etag: str) -> str:
    """The version part of page keys split from the source version with ``etag``."""
    return _UNSAFE.sub("", etag)[:16]
