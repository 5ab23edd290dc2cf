"""Image ids: the public name of an image in every URL of the output contract.

An id is derived from the source key: the extension is dropped, every
character outside ``A-Z a-z 0-9 . _ -`` is replaced by ``_``, and ``/`` is kept
so folders in the source bucket stay folders in the tiles bucket.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_VALID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
MAX_ID_LENGTH = 512


def image_id_for(key: str) -> str:
    """Derive the image id from a source key or file name."""
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
