"""IIIF Presentation 3 manifests, built with iiif-prezi3 from what the conversion already knows.

One canvas the size of the image, painted with ``full/max`` and its level-0
image service; label, summary, metadata and rights come from the embedded
IPTC/XMP/EXIF when present. Nothing is fetched over the network.
"""

from __future__ import annotations

import functools
import gc
import json
import threading
from typing import TYPE_CHECKING, Any

from app.model import ImageFacts
from app.pipeline import background

if TYPE_CHECKING:
    from iiif_prezi3 import AnnotationBody, Canvas, KeyValueString, ServiceV3

# exiftool -G names, first found wins: XMP, then IPTC, then EXIF, as photo tools write them.
TITLE = ("XMP:Title", "IPTC:ObjectName", "XMP:Headline", "IPTC:Headline")
DESCRIPTION = ("XMP:Description", "IPTC:Caption-Abstract", "EXIF:ImageDescription")
FIELDS = {
    "Creator": ("XMP:Creator", "IPTC:By-line", "EXIF:Artist"),
    "Date": ("XMP:DateCreated", "IPTC:DateCreated", "EXIF:DateTimeOriginal", "XMP:CreateDate"),
    "Rights": ("XMP:Rights", "IPTC:CopyrightNotice", "EXIF:Copyright"),
    "Credit": ("XMP:Credit", "IPTC:Credit"),
    "Source": ("XMP:Source", "IPTC:Source"),
}
LICENCE = ("XMP:License", "XMP:WebStatement", "XMP:UsageTerms")
# What Presentation 3 allows in "rights", in the canonical http form its schema checks.
RIGHTS_PREFIXES = (
    "http://creativecommons.org/licenses/",
    "http://creativecommons.org/publicdomain/",
    "http://rightsstatements.org/vocab/",
)


@functools.cache
def prezi():
    """iiif-prezi3, imported on first use: building its pydantic models takes about 0.4 s of CPU.

    Its ~40,000 objects live as long as the process, so they are frozen out of
    the cyclic garbage collector: later collections, and the one at exit
    (~0.1 s), no longer walk them.
    """
    import iiif_prezi3

    gc.freeze()
    return iiif_prezi3


def warm_up() -> None:
    """Import iiif-prezi3 in the background, so a conversion hides the cost behind libvips' tiling."""

    def import_at_idle_priority() -> None:
        background.lower_this_thread()
        prezi()

    threading.Thread(target=import_at_idle_priority, name="prezi-import", daemon=True).start()


def build(
    service_id: str,
    facts: ImageFacts,
    info: dict[str, Any],
    tags: dict[str, Any],
    name: str,
    thumbnail: tuple[int, int],
) -> dict[str, Any]:
    """The manifest for one converted image whose IIIF image service is ``service_id``."""
    manifest = prezi().Manifest(id=f"{service_id}/manifest.json", label=text(_first(tags, TITLE) or name))
    description = _first(tags, DESCRIPTION)
    if description:
        manifest.summary = text(description)
    manifest.metadata = _metadata(tags, facts)
    rights = _rights_uri(_first(tags, LICENCE))
    if rights:
        manifest.rights = rights
    manifest.thumbnail = [thumbnail_of(service_id, thumbnail)]
    max_size = (info.get("maxWidth", facts.width), info.get("maxHeight", facts.height))
    manifest.add_item(
        image_canvas(f"{service_id}/canvas/1", "Image", service_id, (facts.width, facts.height), max_size)
    )
    return json.loads(manifest.jsonld())  # plain JSON types (jsonld_dict keeps pydantic URL objects)


def pages_manifest(
    manifest_url: str,
    label: str,
    pages: list[tuple[str, str, tuple[int, int], tuple[int, int]]],
    thumbnail: tuple[int, int],
    summary: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A manifest of several images in order, one canvas each; the first is the thumbnail.

    ``pages`` are (service id, label, size, full/max size); ``thumbnail`` is a declared size of the first.
    """
    manifest = prezi().Manifest(id=manifest_url, label=text(label))
    if summary:
        manifest.summary = text(summary)
    if metadata:
        manifest.metadata = [
            prezi().KeyValueString(label=text(key), value=text(value)) for key, value in metadata.items()
        ]
    base = manifest_url.removesuffix("/manifest.json")
    for position, (service_id, page_label, size, max_size) in enumerate(pages, start=1):
        manifest.add_item(image_canvas(f"{base}/canvas/{position}", page_label, service_id, size, max_size))
    manifest.thumbnail = [thumbnail_of(pages[0][0], thumbnail)]
    return json.loads(manifest.jsonld())


def document_manifest(
    base_url: str,
    item_id: str,
    title: str,
    pages: list[tuple[str, str, int, int]],
    bound: int,
    summary: str | None = None,
    creator: str | None = None,
) -> dict[str, Any]:
    """The manifest of a document's item: ``pages`` are (page id, page label, width, height), in page order."""
    from app.iiif import grid

    canvases = [
        (f"{base_url}/{page}", f"p. {label}", (width, height), grid.max_size(width, height, bound)[1:])
        for page, label, width, height in pages
    ]
    metadata = {"Creator": creator} if creator else {}
    metadata["Pages"] = str(len(pages))
    _, _, first_width, first_height = pages[0]
    return pages_manifest(
        f"{base_url}/{item_id}/manifest.json",
        title,
        canvases,
        grid.thumbnail_size(first_width, first_height, bound),
        summary,
        metadata,
    )


def image_canvas(
    canvas_id: str, label: str, service_id: str, size: tuple[int, int], max_size: tuple[int, int]
) -> Canvas:
    """A canvas of the image's size, painted with its full/max and level-0 image service."""
    iiif = prezi()
    canvas = iiif.Canvas(id=canvas_id, width=size[0], height=size[1], label=text(label))
    body = iiif.AnnotationBody(
        id=f"{service_id}/full/max/0/default.jpg",
        type="Image",
        format="image/jpeg",
        width=max_size[0],
        height=max_size[1],
        service=_service(service_id),
    )
    page = iiif.AnnotationPage(id=f"{canvas_id}/page")
    page.add_item(iiif.Annotation(id=f"{canvas_id}/image", motivation="painting", body=body, target=canvas.id))
    canvas.add_item(page)
    return canvas


def thumbnail_of(service_id: str, size: tuple[int, int]) -> AnnotationBody:
    width, height = size
    return prezi().AnnotationBody(
        id=f"{service_id}/full/{width},{height}/0/default.jpg",
        type="Image",
        format="image/jpeg",
        width=width,
        height=height,
        service=_service(service_id),
    )


def _service(service_id: str) -> list[ServiceV3]:
    return [prezi().ServiceV3(id=service_id, type="ImageService3", profile="level0")]


def _metadata(tags: dict[str, Any], facts: ImageFacts) -> list[KeyValueString]:
    pairs = [(label, _first(tags, names)) for label, names in FIELDS.items()]
    camera = " ".join(str(tags[n]) for n in ("EXIF:Make", "EXIF:Model") if tags.get(n))
    pairs += [("Camera", camera), ("Dimensions", f"{facts.width} x {facts.height} pixels")]
    return [prezi().KeyValueString(label=text(label), value=text(value)) for label, value in pairs if value]


def _rights_uri(value: Any) -> str | None:
    """A Creative Commons or RightsStatements.org URI, as the spec spells them (http), else None."""
    if not isinstance(value, str):
        return None
    uri = value.strip().replace("https://", "http://", 1)
    return uri if uri.startswith(RIGHTS_PREFIXES) else None


def _first(tags: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = tags.get(name)
        if isinstance(value, dict):  # XMP language alternatives under -struct
            value = value.get("x-default") or next(iter(value.values()), None)
        if isinstance(value, list):
            value = "; ".join(str(item) for item in value)
        if value not in (None, ""):
            return value
    return None


def text(value: Any) -> dict[str, list[str]]:
    """A language map; embedded text carries no reliable language, so "none"."""
    return {"none": [str(value)]}
