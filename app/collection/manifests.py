"""Multi-canvas item manifests and the IIIF Collection. Pure: no S3.

Each canvas is painted with an already converted image's level-0 service, so
a collection costs no pixel work of its own. The spreadsheet's properties
(``app/collection/spreadsheet.py``) are IIIF-shaped already and go on the
manifest as they are; ``thumbnail`` and ``start`` name pages.
"""

from __future__ import annotations

import json
from typing import Any

from app.iiif import grid
from app.pipeline.manifest import image_canvas, prezi, services_of, text, thumbnail_of

CONTEXT = "http://iiif.io/api/presentation/3/context.json"
PASSED_ON = (
    "summary",
    "metadata",
    "requiredStatement",
    "rights",
    "navDate",
    "provider",
    "homepage",
    "seeAlso",
    "behavior",
    "viewingDirection",
)


def item_manifest(item: dict[str, Any], base_url: str, manifest_url: str, bound: int) -> dict[str, Any]:
    """One manifest per item: its pages in order, each ``{"id", "label", "width", "height", "versions"}`` (the Image
    API versions it was published in); ``base_url`` is where the images' tiles are."""
    base = manifest_url.removesuffix("/manifest.json")
    properties = item["properties"]
    manifest = prezi().Manifest(id=manifest_url, label=text(item["identifier"]))
    for position, page in enumerate(item["pages"], start=1):
        size = (page["width"], page["height"])
        max_size = grid.max_size(*size, bound)[1:]
        services = services_of(base_url, page["id"], page.get("versions", (3,)))
        manifest.add_item(image_canvas(f"{base}/canvas/{position}", page["label"], services, size, max_size))
    built = json.loads(manifest.jsonld())
    first = item["pages"][properties.get("thumbnail", 0)]
    size = (first["width"], first["height"])
    services = services_of(base_url, first["id"], first.get("versions", (3,)))
    thumbnail = thumbnail_of(services, grid.thumbnail_size(*size, bound), size)
    document = {
        "@context": built["@context"],
        "id": manifest_url,
        "type": "Manifest",
        "label": properties.get("label") or text(item["identifier"]),
        **{name: properties[name] for name in PASSED_ON if properties.get(name)},
        "thumbnail": [json.loads(thumbnail.jsonld())],
    }
    document["thumbnail"][0].pop("@context", None)
    for agent in document.get("provider", []):
        agent.setdefault("id", f"{manifest_url}#provider")
    for link in document.get("homepage", []):
        link["label"] = document["label"]
    if "start" in properties:
        document["start"] = {"id": f"{base}/canvas/{properties['start'] + 1}", "type": "Canvas"}
    document["items"] = built["items"]
    return document


def collection(collection_url: str, label: dict[str, list[str]], manifests: list[tuple[str, Any]]) -> dict[str, Any]:
    """The IIIF Collection listing every item's manifest: ``manifests`` is [(url, label language map)].

    Written as plain JSON rather than through iiif-prezi3: a Collection of 100,000 items is built in a second."""
    return {
        "@context": CONTEXT,
        "id": collection_url,
        "type": "Collection",
        "label": label,
        "items": [{"id": url, "type": "Manifest", "label": item_label} for url, item_label in manifests],
    }
