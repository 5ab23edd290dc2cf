"""IIIF Presentation 3 manifests, built with iiif-prezi3 from what the conversion already knows, and on request
Presentation 2.1 ones for the clients that read only those.

One canvas the size of the image, painted with ``full/max`` and its level-0
image services (3.0, and 2.1 where published); label, summary, metadata and
rights come from the embedded IPTC/XMP/EXIF when present. Nothing is fetched
over the network.
"""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.iiif.info import LEVEL0_PROFILE_2
from app.iiif.paths import canonical2, service_path
from app.model import ImageFacts
from app.pipeline import background

if TYPE_CHECKING:
    from iiif_prezi3 import AnnotationBody, Canvas, KeyValueString, ServiceV2, ServiceV3

Services = Mapping[int, str]  # Image API version -> an image's level-0 service of that version

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
    background.soon(prezi, "prezi-import")


def build(
    services: Services,
    facts: ImageFacts,
    max_size: tuple[int, int],
    tags: dict[str, Any],
    name: str,
    thumbnail: tuple[int, int],
    manifest_url: str,
) -> dict[str, Any]:
    """The manifest for one converted image with these image ``services``; ``max_size`` is its full/max."""
    manifest = prezi().Manifest(id=manifest_url, label=text(_first(tags, TITLE) or name))
    description = _first(tags, DESCRIPTION)
    if description:
        manifest.summary = text(description)
    manifest.metadata = _metadata(tags, facts)
    rights = _rights_uri(_first(tags, LICENCE))
    if rights:
        manifest.rights = rights
    size = (facts.width, facts.height)
    manifest.thumbnail = [thumbnail_of(services, thumbnail, size)]
    base = manifest_url.removesuffix("/manifest.json")
    manifest.add_item(image_canvas(f"{base}/canvas/1", "Image", services, size, max_size))
    return json.loads(manifest.jsonld())  # plain JSON types (jsonld_dict keeps pydantic URL objects)


def build_v2(
    service_id: str,
    facts: ImageFacts,
    max_size: tuple[int, int],
    tags: dict[str, Any],
    name: str,
    thumbnail: tuple[int, int],
) -> dict[str, Any]:
    """A Presentation 2.1 manifest (``service_id/manifest.json``) painting the image's 2.1 level-0 service.

    Plain JSON: iiif-prezi3 writes only Presentation 3, and the 2.x library would only add an import.
    """
    size = (facts.width, facts.height)
    canvas = f"{service_id}/canvas/1"
    manifest: dict[str, Any] = {
        "@context": "http://iiif.io/api/presentation/2/context.json",
        "@id": f"{service_id}/manifest.json",
        "@type": "sc:Manifest",
        "label": str(_first(tags, TITLE) or name),
    }
    description = _first(tags, DESCRIPTION)
    if description:
        manifest["description"] = str(description)
    manifest["metadata"] = [
        {"label": item.label["none"][0], "value": item.value["none"][0]} for item in _metadata(tags, facts)
    ]
    rights = _rights_uri(_first(tags, LICENCE))
    if rights:
        manifest["license"] = rights
    service = {"@context": "http://iiif.io/api/image/2/context.json", "@id": service_id, "profile": LEVEL0_PROFILE_2}
    manifest["thumbnail"] = {
        "@id": f"{service_id}/{_v2_size(thumbnail, size)}",
        "@type": "dctypes:Image",
        "format": "image/jpeg",
        "width": thumbnail[0],
        "height": thumbnail[1],
        "service": service,
    }
    image = {
        "@id": f"{canvas}/image",
        "@type": "oa:Annotation",
        "motivation": "sc:painting",
        "on": canvas,
        "resource": {
            "@id": f"{service_id}/full/max/0/default.jpg",
            "@type": "dctypes:Image",
            "format": "image/jpeg",
            "width": max_size[0],
            "height": max_size[1],
            "service": service,
        },
    }
    manifest["sequences"] = [
        {
            "@id": f"{service_id}/sequence/normal",
            "@type": "sc:Sequence",
            "canvases": [
                {
                    "@id": canvas,
                    "@type": "sc:Canvas",
                    "label": "Image",
                    "width": size[0],
                    "height": size[1],
                    "images": [image],
                }
            ],
        }
    ]
    return manifest


def pages_manifest(
    manifest_url: str,
    label: str,
    pages: list[tuple[str | Services, str, tuple[int, int], tuple[int, int]]],
    thumbnail: tuple[int, int],
    summary: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A manifest of several images in order, one canvas each; the first is the thumbnail.

    ``pages`` are (services, label, size, full/max size), services a 3.0 service id or ``services_of``'s
    mapping; ``thumbnail`` is a declared size of the first.
    """
    manifest = prezi().Manifest(id=manifest_url, label=text(label))
    if summary:
        manifest.summary = text(summary)
    if metadata:
        manifest.metadata = [
            prezi().KeyValueString(label=text(key), value=text(value)) for key, value in metadata.items()
        ]
    base = manifest_url.removesuffix("/manifest.json")
    for position, (services, page_label, size, max_size) in enumerate(pages, start=1):
        manifest.add_item(image_canvas(f"{base}/canvas/{position}", page_label, services, size, max_size))
    manifest.thumbnail = [thumbnail_of(pages[0][0], thumbnail, pages[0][2])]
    return json.loads(manifest.jsonld())


def document_manifest(
    base_url: str,
    item_id: str,
    title: str,
    pages: list[tuple[str, str, int, int]],
    bound: int,
    summary: str | None = None,
    creator: str | None = None,
    versions: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """The manifest of a document's item: ``pages`` are (page id, page label, width, height), in page order;
    ``versions`` the Image API versions each page was published in (default 3.0)."""
    from app.iiif import grid

    canvases = [
        (
            services_of(base_url, page, (versions or {}).get(page, (3,))),
            f"p. {label}",
            (width, height),
            grid.max_size(width, height, bound)[1:],
        )
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


def services_of(base_url: str, image_id: str, versions: Sequence[int]) -> dict[int, str]:
    """An image's level-0 services by Image API version, for the versions it was published in."""
    return {version: f"{base_url}/{service_path(version, image_id)}" for version in versions}


def image_canvas(
    canvas_id: str, label: str, services: str | Services, size: tuple[int, int], max_size: tuple[int, int]
) -> Canvas:
    """A canvas of the image's size, painted with its full/max and level-0 image services (a string: 3.0's)."""
    iiif = prezi()
    services = _versions(services)
    canvas = iiif.Canvas(id=canvas_id, width=size[0], height=size[1], label=text(label))
    body = iiif.AnnotationBody(
        id=f"{services.get(3) or services[2]}/full/max/0/default.jpg",
        type="Image",
        format="image/jpeg",
        width=max_size[0],
        height=max_size[1],
        service=_service(services),
    )
    page = iiif.AnnotationPage(id=f"{canvas_id}/page")
    page.add_item(iiif.Annotation(id=f"{canvas_id}/image", motivation="painting", body=body, target=canvas.id))
    canvas.add_item(page)
    return canvas


def thumbnail_of(
    services: str | Services, size: tuple[int, int], image_size: tuple[int, int] | None = None
) -> AnnotationBody:
    """A declared size as a thumbnail, by its 3.0 path (or, with no 3.0 service, its 2.1 path in an image of
    ``image_size``)."""
    services = _versions(services)
    width, height = size
    path = f"{services[3]}/full/{width},{height}/0/default.jpg" if 3 in services else None
    return prezi().AnnotationBody(
        id=path or f"{services[2]}/{_v2_size(size, image_size or size)}",
        type="Image",
        format="image/jpeg",
        width=width,
        height=height,
        service=_service(services),
    )


def _versions(services: str | Services) -> Services:
    return {3: services} if isinstance(services, str) else services


def _v2_size(size: tuple[int, int], image_size: tuple[int, int]) -> str:
    return canonical2((0, 0, *image_size), size, *image_size, level0=True)


def _service(services: Services) -> list[ServiceV3 | ServiceV2]:
    iiif = prezi()
    found: list[ServiceV3 | ServiceV2] = []
    if 3 in services:
        found.append(iiif.ServiceV3(id=services[3], type="ImageService3", profile="level0"))
    if 2 in services:
        found.append(iiif.ServiceV2(id=services[2], type="ImageService2", profile=LEVEL0_PROFILE_2))
    return found


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
