"""Turn job records into what people read: URLs, dollars, sizes, grouped metadata."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from app.iiif.paths import service_path
from config import Settings


def urls(record: dict[str, Any], settings: Settings) -> dict[str, str]:
    """Where the published files are: an image's layouts and manifests, in each IIIF version it was published in
    (``info``/``manifest`` 3.0, ``info2``/``manifest2`` 2.1); a document's item manifest once done."""
    base, image_id = settings.public_base_url.rstrip("/"), record["id"]
    versions = record.get("iiif_versions", [3])  # records from before IIIF_VERSIONS: 3.0 only
    v2 = f"{base}/{service_path(2, image_id)}"
    if record.get("kind") == "item":
        found = {"manifest": f"{base}/{image_id}/manifest.json"} if record.get("manifest") else {}
    else:
        found = {"dzi": f"{base}/{image_id}.dzi"}
        if 3 in versions:
            found["info"] = f"{base}/{image_id}/info.json"
        if 2 in versions:
            found["info2"] = f"{v2}/info.json"
        if record.get("manifest", True):  # False: converted with IIIF_MANIFESTS off
            presentation = record.get("presentation_versions", [3])
            if 3 in presentation:
                found["manifest"] = f"{base}/{image_id}/manifest.json"
            if 2 in presentation:
                found["manifest2"] = f"{v2}/manifest.json"
    if record.get("thumbnail"):
        found["thumbnail"] = thumbnail_url(base, image_id, record["thumbnail"], versions)
    return found


_SIZE_WH = re.compile(r"(^|/)full/(\d+),\d+/")


def thumbnail_url(base: str, image_id: str, thumbnail: str, versions: list[int]) -> str:
    """A record's thumbnail (a 3.0 size path under ``image_id``: ``full/w,h/0/default.jpg``, for an item
    ``p0001/full/...``), or the same size by its 2.1 name (``full/w,``) where no 3.0 service was published."""
    if 3 in versions:
        return f"{base}/{image_id}/{thumbnail}"
    by_width = _SIZE_WH.sub(r"\1full/\2,/", thumbnail)
    return f"{base}/{service_path(2, image_id)}/{by_width}"


def cost(record: dict[str, Any], settings: Settings) -> dict[str, float] | None:
    """Dollars for this job's compute, requests and one month of storage, from the configured unit prices."""
    usage = record.get("cost")
    if not usage:
        return None
    compute = usage["compute"]
    if compute["kind"] == "batch":
        hours = compute["seconds"] / 3600
        compute_usd = (
            compute.get("vcpus", settings.batch_vcpus) * settings.price_batch_vcpu_hour
            + compute["memory_gb"] * settings.price_batch_gb_hour
        ) * hours
    else:
        compute_usd = compute["gb_seconds"] * settings.price_lambda_gb_second
    s3 = usage["s3"]
    requests_usd = (
        s3.get("write_requests", 0) * settings.price_s3_write_per_1000
        + s3.get("read_requests", 0) * settings.price_s3_read_per_1000
    ) / 1000
    storage_usd = s3.get("bytes_stored", 0) / 1024**3 * settings.price_s3_gb_month
    return {
        "compute": compute_usd,
        "requests": requests_usd,
        "storage_month": storage_usd,
        "total": compute_usd + requests_usd + storage_usd,
    }


def present(record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The record plus its URLs, cost and embed snippet, as the API returns it and the templates use it."""
    found = urls(record, settings)
    presented = {
        **record,
        "urls": found,
        "cost_usd": cost(record, settings),
        "embed": embed_snippet(found.get("info") or found["info2"]) if {"info", "info2"} & set(found) else None,
    }
    if record.get("kind") == "item":
        base = settings.public_base_url.rstrip("/")
        versions = record.get("iiif_versions", [3])
        presented["page_thumbnails"] = {
            page["id"]: thumbnail_url(base, page["id"], page["thumbnail"], versions)
            for page in record["pages"]
            if page["status"] == "done" and page.get("thumbnail")
        }
    return presented


def embed_snippet(info_url: str) -> str:
    """HTML another site pastes to show this image in OpenSeadragon (plain text here: templates escape it)."""
    return (
        f'<div id="zoom" style="width: 100%; height: 600px"></div>\n'
        f'<script src="https://cdn.jsdelivr.net/npm/openseadragon@6.1.1/build/openseadragon/openseadragon.min.js"></script>\n'
        f'<script>\n  OpenSeadragon({{ id: "zoom", tileSources: {json.dumps(info_url)},\n'
        f'    prefixUrl: "https://cdn.jsdelivr.net/npm/openseadragon@6.1.1/build/openseadragon/images/" }});\n</script>'
    )


def grouped_metadata(document: dict[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """exiftool's ``Group:Tag`` keys as {group: [(tag, value)]}, groups in a reading order."""
    if not document:
        return {}
    groups: dict[str, list[tuple[str, Any]]] = {"Image": sorted(document.get("image", {}).items())}
    for name, value in sorted(document.get("exiftool", {}).items()):
        group, _, tag = name.partition(":")
        groups.setdefault(group if tag else "Other", []).append((tag or name, value))
    if document.get("vips_exif"):
        groups["libvips EXIF"] = sorted(document["vips_exif"].items())
    return groups


def megabytes(size: int | None) -> str:
    """A byte count as people read it (kB, MB, GB)."""
    if not size:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"


def megapixels(facts: dict[str, Any] | None) -> str:
    return f"{facts['width'] * facts['height'] / 1e6:,.1f} MP" if facts else "–"


def ago(stamp: str | None) -> str:
    if not stamp:
        return "–"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def dollars(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
