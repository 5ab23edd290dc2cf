"""Collection task files: what to group, what to call it, where to publish. Pure: no S3.

Native form (JSON, dropped under ``tasks/`` in the source bucket)::

    {"collection": "Ms2016_012", "label": "Women's Development Corporation",
     "source_prefix": "Ms2016_012/", "csv": "Ms2016_012/items.csv",
     "destination_prefix": "collections/Ms2016_012", "public_base_url": "https://tiles.example.org",
     "mapping": "Ms2016_012/mapping.json", "page_labels": "Ms2016_012/pages.csv", "page_label_pattern": "f. {n}"}

``csv`` describes the items (``app/collection/spreadsheet.py``); ``mapping`` (a key
of a JSON file, or the mapping inline) says what its columns are; page labels
come from ``page_labels`` (a second CSV), a pattern, or "Page N".

The AWS Batch IIIF generator's task files are accepted unchanged: their
``environment`` list maps SRC_BUCKET -> source bucket, ACCESS_DIR ->
source_prefix, CSV_PATH + CSV_NAME -> csv, DEST_BUCKET -> destination_prefix,
DEST_URL -> public_base_url, and the collection id is the ``MsYYYY_NNN`` in the
CSV name (as that generator derives it) or else the job name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.errors import InputError
from app.ids import image_id_for

IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".heic",
    ".heif",
    ".avif",
    ".jp2",
    ".j2k",
    ".jpx",
    ".jpf",
)  # not .pdf: a PDF is an item of its own, not one canvas


class TaskError(InputError):
    """The task file, its CSV or its images are not usable as they are."""


@dataclass(frozen=True)
class Task:
    collection: str
    source_prefix: str
    destination_prefix: str
    label: str | None = None
    csv_key: str | None = None
    public_base_url: str | None = None
    source_bucket: str | None = None
    mapping: str | dict | None = None  # a key in the source bucket, or the mapping itself
    page_labels_key: str | None = None
    page_label_pattern: str | None = None


@dataclass(frozen=True)
class Item:
    """One object of the collection (a folder of pages): one multi-canvas manifest."""

    identifier: str
    image_keys: tuple[str, ...]
    image_ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_ids", tuple(image_id_for(key) for key in self.image_keys))


COLLECTIONS_ROOT = "collections"  # every collection publishes under it, so none can overwrite an image's outputs
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = (
    "collection",
    "label",
    "source_prefix",
    "csv",
    "destination_prefix",
    "public_base_url",
    "source_bucket",
    "page_labels",
    "page_label_pattern",
)


def parse_task(document: object) -> Task:
    """A Task from a task file's JSON, native or AWS Batch IIIF generator form; every field checked."""
    if not isinstance(document, dict):
        raise TaskError("the task file must be a JSON object")
    if "environment" in document:
        document = _from_batch_generator(document)
    for name in _FIELDS:
        value = document.get(name)
        if value is not None and not isinstance(value, str):
            raise TaskError(f"{name} must be a string, not {type(value).__name__}")
        if value and _UNPRINTABLE.search(value):
            raise TaskError(f"{name} holds control characters")
    mapping = document.get("mapping")
    if mapping is not None and not isinstance(mapping, (str, dict)):
        raise TaskError(f"mapping must be a key of a JSON file or the mapping itself, not {type(mapping).__name__}")
    missing = [name for name in ("collection", "source_prefix") if not document.get(name)]
    if missing:
        raise TaskError(f"the task file lacks {', '.join(missing)}")
    collection = document["collection"].strip("/")
    if not _SEGMENT.fullmatch(collection):
        raise TaskError(f"collection {collection!r}: use letters, digits, '.', '_' and '-'")
    destination = _relative_path("destination_prefix", document.get("destination_prefix") or "")
    if not destination:
        destination = f"{COLLECTIONS_ROOT}/{collection}"
    parts = destination.split("/")
    if parts[0] != COLLECTIONS_ROOT or len(parts) < 2 or not all(_SEGMENT.fullmatch(part) for part in parts[1:]):
        raise TaskError(
            f"destination_prefix {destination!r} must be a folder under {COLLECTIONS_ROOT}/ "
            "(letters, digits, '.', '_' and '-' in each part)"
        )
    public = document.get("public_base_url") or None
    if public and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public):
        raise TaskError(f"public_base_url {public!r} must be an http(s) URL")
    return Task(
        collection=collection,
        source_prefix=_relative_path("source_prefix", document["source_prefix"]) + "/",
        label=document.get("label") or None,
        destination_prefix=destination,
        csv_key=_relative_path("csv", document.get("csv") or "") or None,
        public_base_url=public,
        source_bucket=document.get("source_bucket") or None,
        mapping=_relative_path("mapping", mapping) if isinstance(mapping, str) else mapping,
        page_labels_key=_relative_path("page_labels", document.get("page_labels") or "") or None,
        page_label_pattern=document.get("page_label_pattern") or None,
    )


def _relative_path(name: str, value: str) -> str:
    """A key or prefix inside our buckets: no leading '/', no '.' or '..' parts, no scheme, not tasks/."""
    if value.startswith("/") or "://" in value or value.startswith("s3:"):
        raise TaskError(f"{name} {value!r} must be relative to the bucket (no leading '/', no URL)")
    stripped = value.strip("/")
    parts = stripped.split("/") if stripped else []
    if any(part in ("", ".", "..") for part in parts):
        raise TaskError(f"{name} {value!r} must not have empty, '.' or '..' parts")
    if parts and parts[0] == "tasks":
        raise TaskError(f"{name} {value!r} must not be under tasks/")
    return stripped


def _from_batch_generator(document: dict) -> dict:
    """The generator's environment list as native fields. DEST_BUCKET names another bucket, so it is not used:
    the collection publishes under collections/ in the tiles bucket."""
    entries = document.get("environment")
    if not isinstance(entries, list):
        raise TaskError("environment must be a list of {name, value} objects")
    env = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            value = entry.get("value")
            if not isinstance(value, str):
                raise TaskError(f"environment {entry['name']}: the value must be a string")
            env[entry["name"]] = value
    csv_key = "/".join(part.strip("/") for part in (env.get("CSV_PATH"), env.get("CSV_NAME")) if part) or None
    found = re.search(r"Ms\d{4}_\d{3}", env.get("CSV_NAME") or "")
    job_name = document.get("jobName")
    return {
        "collection": found.group(0) if found else job_name if isinstance(job_name, str) else None,
        "source_prefix": env.get("ACCESS_DIR"),
        "csv": csv_key,
        "public_base_url": env.get("DEST_URL"),
        "source_bucket": env.get("SRC_BUCKET"),
    }


def group_items(task: Task, keys: list[str]) -> list[Item]:
    """Images under the task's prefix, one item per folder (file-name order); images right under it form one item."""
    images = sorted(k for k in keys if k.lower().endswith(IMAGE_SUFFIXES) and not k.startswith("tasks/"))
    if not images:
        raise TaskError(f"no images under s3 prefix {task.source_prefix!r}")
    folders: dict[str, list[str]] = {}
    for key in images:
        relative = PurePosixPath(key[len(task.source_prefix) :])
        parts = [p for p in relative.parent.parts if p.lower() != "access"]  # the generator's Item/Access/ layout
        folders.setdefault(parts[0] if parts else PurePosixPath(task.source_prefix).name, []).append(key)
    for identifier in folders:
        if identifier in (".", "..") or _UNPRINTABLE.search(identifier):
            raise TaskError(f"folder {identifier!r} under {task.source_prefix!r} cannot name an item")
    try:
        return [Item(identifier, tuple(keys)) for identifier, keys in sorted(folders.items())]
    except ValueError as error:  # a key no image id can be derived from
        raise TaskError(str(error)) from None


def page_label(key: str, position: int) -> str:
    """ "Page N" from a name ending in _N (the generator's convention, e.g. Box2_F19_003.tif), else the position."""
    last = PurePosixPath(key).stem.split("_")[-1]
    return f"Page {int(last)}" if last.isdigit() else f"Page {position}"
