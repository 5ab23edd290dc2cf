"""Image ids: the public name of an image in every URL of the output contract.

One key, one image: no two source keys ever share an id. An ASCII key's id is
the key without its extension, with every character outside
``A-Z a-z 0-9 . _ -`` replaced by ``_`` (``maps/sheet 12.tif`` is
``maps/sheet_12``), as it always was, so published URLs stay stable. A
non-ASCII key is transliterated to readable ASCII (``日本.jpg`` reads
``RiBen``) and, because transliteration is many-to-one, a short hash of the
exact key is appended after ``~``, a character no ASCII key's id contains
(``RiBen~oxzffr3j``). ASCII keys that still meet (``a b.jpg`` and ``a_b.jpg``,
``x.jpg`` and ``x.png``) are kept apart by the job: the id belongs to the key
that has it, and the other is refused with a reason naming it (``app.jobs``).
``/`` is kept so folders in the source bucket stay folders in the tiles bucket.

A document's pages (see ``app.items``) are sources of their own under
``pages/`` in the source bucket: ``pages/ITEM/p0007@VERSION.pdf`` is page 7 of
the item ``ITEM`` as split from the source version ``VERSION``, and its id is
``ITEM/p0007``: stable across versions, in page order when sorted.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

from anyascii import anyascii

from app.outputs import looks_like_output

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_VALID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*(~[a-z2-7]{8})?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_ID_LENGTH = 512
MAX_SEGMENT = 100  # characters of one readable segment; a longer one is cut and the hash keeps it apart
MAX_SEGMENT_BYTES = 255  # a file name's limit on every file system the pipeline stages to
MAX_KEY_BYTES = 1024  # S3's own limit
HASH_MARK = "~"
PAGES_PREFIX = "pages/"
_PAGE_KEY = re.compile(r"^pages/(?P<item>.+)/p(?P<number>\d{4,})@(?P<version>[A-Za-z0-9]+)\.[a-z]+$")


def image_id_for(key: str) -> str:
    """The image id of a source key (or file name): readable, stable for ASCII keys, hashed when transliterated."""
    page = page_of(key)
    if page:
        return page_id(page[0], page[1])
    path = PurePosixPath(key.strip("/"))
    stem = str(path.with_suffix("")) if path.suffix else str(path)
    image_id = "/".join(_readable(part) for part in stem.split("/") if part)
    if not image_id:
        raise ValueError(f"cannot derive an image id from {key!r}")
    if not key.isascii() or len(image_id) > MAX_ID_LENGTH:  # lossy: the exact key's hash keeps it apart
        image_id = f"{image_id[: MAX_ID_LENGTH - 9].rstrip('/')}{HASH_MARK}{_digest(key)}"
    return image_id


def distinct_id(key: str) -> str:
    """An id no other key has, for the record of a key that is refused (its readable id is taken, or bad)."""
    readable = image_id_for(key)
    if HASH_MARK in readable:
        return readable
    return f"{readable[: MAX_ID_LENGTH - 9]}{HASH_MARK}{_digest(key)}"


def key_problem(key: str) -> str | None:
    """Why a source key cannot be published (bad input: the job fails with this reason); None if it can."""
    if _CONTROL.search(key):
        return "its name has control characters"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"its name is over S3's {MAX_KEY_BYTES} bytes"
    longest = max(key.split("/"), key=lambda part: len(part.encode("utf-8", "surrogatepass")))
    if len(longest.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return f"a folder or file name in it is over {MAX_SEGMENT_BYTES} bytes ({longest[:40]}...)"
    if page_of(key):
        return None
    if key.startswith(PAGES_PREFIX):
        return f"the folder {PAGES_PREFIX} holds the pages the service splits from documents"
    why = looks_like_output(key)
    return f"it would collide with published outputs: {why}" if why else None


def _readable(segment: str) -> str:
    ascii_name = segment if segment.isascii() else anyascii(unicodedata.normalize("NFC", segment))[:MAX_SEGMENT]
    return _UNSAFE.sub("_", ascii_name).lstrip(".") or "_"


def _digest(key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest).decode()[:8].lower()


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
