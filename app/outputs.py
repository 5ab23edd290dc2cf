"""The output contract's key space: which published keys belong to which image, and which names are taken.

One image id owns, in the tiles bucket, ``ID.dzi``, ``ID_files/L/C_R.jpg``,
``ID/info.json``, ``ID/manifest.json``, every ``ID/REGION/SIZE/ROTATION/QUALITY.FORMAT``
(tiles, sizes, named derivatives), the same under ``iiif/2/ID/`` (its IIIF
Image API 2.1 service, with ``IIIF_VERSIONS``), its serving TIFF (``SERVING_TIFF``) and its
oversized answers (both versions' under the 3.0 canonical path);
in the metadata bucket ``ID.json``. The shapes are exact, so an image ``a`` never
claims a key of a nested image ``a/b``; a source key that would itself produce
one of these shapes is refused (``looks_like_output``), so no two images'
key spaces can overlap. Pruning and takedown list and match with these rules:
one definition, so what is published and what is deleted cannot drift apart.
"""

from __future__ import annotations

import re

from app.iiif import serving
from app.iiif.paths import V2_PREFIX

_REGION = r"(?:full|square|\d+,\d+,\d+,\d+|pct:[\d.]+,[\d.]+,[\d.]+,[\d.]+)"
_SIZE = r"(?:max|full|\^?\d+,\d*|\^?,\d+|\^?!?\d+,\d+|\^?pct:[\d.]+)"
_ROTATION = r"!?[\d.]+"
_QUALITY = r"(?:default|color|gray|bitonal)\.(?:jpg|png|tif|webp|gif|jp2|pdf)"
_IIIF_FILE = rf"{_REGION}/{_SIZE}/{_ROTATION}/{_QUALITY}"
_DZI_TILE = r"\d+/\d+_\d+\.(?:jpg|jpeg|png|webp)"
_SUFFIXES = rf"(?:\.dzi|_files/{_DZI_TILE}|/(?:info|manifest|collection)\.json|/{_IIIF_FILE})"
_V2_SUFFIXES = rf"(?:/(?:info|manifest)\.json|/{_IIIF_FILE})"  # under iiif/2/: the 2.1 service

# Top-level folders the service's own state and outputs use in the metadata and tiles buckets: an image id may
# not start with one (the metadata JSON of an id "jobs/x" would be the job record of "x").
RESERVED_FOLDERS = frozenset(
    {
        "jobs",
        "claims",
        "index",
        "members",
        "tasks",
        "collections",
        "sessions",
        "signin",
        "secrets",
        "cache",
        "reprocess",
        serving.PREFIX.strip("/"),
    }
)

ANSWERS_PREFIX = "cache/iiif/3"  # the dynamic endpoint's stored answers too big for a Lambda response
_VERSION = re.compile(r"[0-9a-f]{32}(-\d+)?")  # an S3 ETag: the published source's

_OUTPUT_SHAPE = re.compile(rf"(?:{_SUFFIXES}|_files/\d+/.*)$")
_ANY_OUTPUT_FOLDER = re.compile(r"(?:^|/)[^/]*_files/\d+/")


def tile_prefixes(image_id: str) -> tuple[str, ...]:
    """Listing these prefixes of the tiles bucket finds every tiles-bucket key the image can own."""
    return (f"{image_id}.dzi", f"{image_id}_files/", f"{image_id}/", f"{V2_PREFIX}{image_id}/")


def owned_tile_key(image_id: str, key: str) -> bool:
    """Whether ``key`` in the tiles bucket is one of ``image_id``'s published objects (never a nested image's)."""
    return bool(
        re.fullmatch(rf"{re.escape(image_id)}{_SUFFIXES}", key)
        or re.fullmatch(rf"{re.escape(V2_PREFIX + image_id)}{_V2_SUFFIXES}", key)
    )


def private_keys(image_id: str) -> tuple[str, ...]:
    """The tiles-bucket keys of the image that are not public (its serving TIFF, with ``SERVING_TIFF``)."""
    return (serving.key(image_id),)


def stored_answer_key(image_id: str, version: str, canonical: str) -> str:
    """Where an oversized dynamic answer is kept: under the image (so a takedown finds it) and its published
    version (the job record's ``published.etag``, so a replaced image is rendered anew)."""
    return f"{ANSWERS_PREFIX}/{image_id}/{version}/{canonical}"


def stored_answer_prefix(image_id: str) -> str:
    return f"{ANSWERS_PREFIX}/{image_id}/"


def owned_stored_answer(image_id: str, key: str) -> bool:
    """Whether ``key`` is one of the image's stored answers (never a nested image's: its next segment is no ETag)."""
    version, _, path = key.removeprefix(stored_answer_prefix(image_id)).partition("/")
    return (
        key.startswith(stored_answer_prefix(image_id))
        and bool(_VERSION.fullmatch(version))
        and owned_tile_key(image_id, f"{image_id}/{path}")
    )


def metadata_key(image_id: str) -> str:
    """The image's EXIF/IPTC/XMP JSON in the metadata bucket."""
    return f"{image_id}.json"


def looks_like_output(key: str) -> str | None:
    """Why a source key would collide with the output contract (None: it would not)."""
    top = key.split("/", 1)[0]
    if "/" in key and top in RESERVED_FOLDERS:
        return f"the folder {top}/ is where the service keeps its own records and outputs"
    if key.startswith(V2_PREFIX):
        return f"the folder {V2_PREFIX} is where the IIIF Image API 2.1 services are published"
    if _OUTPUT_SHAPE.search(key) or _ANY_OUTPUT_FOLDER.search(key):
        return "it is named like a published tile or descriptor (.dzi, _files/N/, info.json, REGION/SIZE/0/...)"
    return None
