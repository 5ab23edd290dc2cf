"""A collection run's plan: items described from the spreadsheet, cut into batches of whole items. Pure: no S3.

An item here is plain JSON, as it travels in batch documents:
``{"identifier", "properties", "pages": [{"id", "key", "etag", "label", "claimed"}], "part": [i, n]}``.
``properties`` are the spreadsheet's IIIF properties with the page selectors
resolved: ``thumbnail`` and ``start`` are page positions (0-based). Items go
whole into batches of about ``BATCH_IMAGES`` images; an item larger than that
is split across batches of its own (``part``), and joined again when the
Collection is assembled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from app.collection import spreadsheet
from app.collection.task import Item, TaskError, page_label

BATCH_IMAGES = 500  # one completion check lists a batch's markers in one request (S3 lists 1,000 keys a page)


def described(
    items: list[Item],
    csv_text: str | None,
    mapping: dict[str, Any] | None,
    page_labels_text: str | None,
    pattern: str | None,
) -> list[dict[str, Any]]:
    """Every item as JSON, with its spreadsheet properties and each page's label; any fault a TaskError."""
    if mapping is not None and csv_text is None:
        raise TaskError("the task names a mapping but no csv")
    columns, separator = spreadsheet.parse_mapping(mapping) if mapping is not None else (None, spreadsheet.SEPARATOR)
    identifiers = {item.identifier for item in items}
    rows = spreadsheet.describe(csv_text, identifiers, columns, separator) if csv_text is not None else {}
    keys_of = {item.identifier: item.image_keys for item in items}
    labels = spreadsheet.page_labels_csv(page_labels_text, keys_of) if page_labels_text is not None else {}
    if pattern:
        spreadsheet.check_pattern(pattern, "the task's page_label_pattern")
    seen: dict[str, str] = {}
    documents = []
    for item in items:
        for key, image_id in zip(item.image_keys, item.image_ids, strict=True):
            if image_id in seen:
                raise TaskError(f"{seen[image_id]!r} and {key!r} would publish as the same image id {image_id!r}")
            seen[image_id] = key
        properties = dict(rows.get(item.identifier, {}))
        item_pattern = properties.pop("pageLabels", None) or pattern
        for selector in ("thumbnail", "start"):
            if selector in properties:
                chosen = spreadsheet.select_page(item.image_keys, properties[selector], f"item {item.identifier!r}")
                properties[selector] = item.image_keys.index(chosen)
        pages = [
            {
                "id": image_id,
                "key": key,
                "label": labels.get(item.identifier, {}).get(key)
                or (spreadsheet.label_from_pattern(item_pattern, key, n) if item_pattern else page_label(key, n)),
            }
            for n, (key, image_id) in enumerate(zip(item.image_keys, item.image_ids, strict=True), start=1)
        ]
        documents.append({"identifier": item.identifier, "properties": properties, "pages": pages})
    return documents


def batches(items: list[dict[str, Any]], size: int | None = None) -> list[list[dict[str, Any]]]:
    """Whole items packed in order into batches of at most ``size`` images; a larger item split over its own."""
    size = size or BATCH_IMAGES
    packed: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    count = 0
    for item in items:
        pages = item["pages"]
        if len(pages) > size:
            if current:
                packed.append(current)
                current, count = [], 0
            parts = [pages[start : start + size] for start in range(0, len(pages), size)]
            packed += [[{**item, "pages": part, "part": [i, len(parts)]}] for i, part in enumerate(parts)]
            continue
        if count + len(pages) > size:
            packed.append(current)
            current, count = [], 0
        current.append({**item, "part": [0, 1]})
        count += len(pages)
    if current:
        packed.append(current)
    return packed


def run_id(inputs: Iterable[str]) -> str:
    """A run is named by everything it was planned from (task, CSVs, mapping, every image's key and ETag): the
    same inputs again resume the same run; any change is a new run."""
    digest = hashlib.sha256()
    for value in inputs:
        digest.update(value.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:16]
