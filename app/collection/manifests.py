"""Multi-canvas item manifests and the IIIF Collection, built with iiif-prezi3. Pure: no S3.

Each canvas is painted with an already converted image's level-0 service, so
a collection costs no pixel work of its own.
"""

from __future__ import annotations

import json
from typing import Any

from app.collection.task import Item, Task, page_label
from app.iiif import grid
from app.pipeline.manifest import pages_manifest, prezi, services_of, text


def item_manifest(
    item: Item, base_url: str, manifest_url: str, images: dict[str, dict[str, Any]], bound: int
) -> dict[str, Any]:
    """One manifest per item: its images in file-name order, canvases labelled by page.

    ``images`` maps image id to its job record (for the facts); ``base_url`` is where the tiles are.
    """
    pages = []
    for position, (key, image_id) in enumerate(zip(item.image_keys, item.image_ids, strict=True), start=1):
        facts = images[image_id]["facts"]
        width, height = facts["width"], facts["height"]
        _, max_w, max_h = grid.max_size(width, height, bound)
        services = services_of(base_url, image_id, images[image_id].get("iiif_versions", (3,)))
        pages.append((services, page_label(key, position), (width, height), (max_w, max_h)))
    first = images[item.image_ids[0]]["facts"]
    return pages_manifest(
        manifest_url,
        item.title or item.identifier,
        pages,
        grid.thumbnail_size(first["width"], first["height"], bound),
        item.description,
    )


def collection(task: Task, collection_url: str, manifests: list[tuple[str, str]]) -> dict[str, Any]:
    """The IIIF Collection listing every item's manifest: ``manifests`` is [(url, label)]."""
    listing = prezi().Collection(id=collection_url, label=text(task.label or task.collection))
    for url, label in manifests:
        listing.add_item(prezi().ManifestRef(id=url, type="Manifest", label=text(label)))
    return json.loads(listing.jsonld())
