"""Plain records passed between the pipeline and its adapters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageFacts:
    """What the header says about a source image, after orientation is applied."""

    format: str
    width: int
    height: int
    bands: int
    bit_depth: int
    interpretation: str
    orientation: int
    has_alpha: bool
    icc_description: str | None
    file_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Phase:
    """One step of publishing: every file of a phase lands before any file of the next is written."""

    name: str  # tiles | descriptors | metadata
    files: tuple[tuple[str, str], ...]  # (staged path, key under the destination)
    destination: str = "tiles"  # the tiles bucket or folder, or "metadata"


@dataclass(frozen=True)
class Conversion:
    """A converted image waiting in a staging folder to be published.

    ``tiles`` and ``descriptors`` are paths relative to ``tiles_root``, each
    list in publishing order: every tile must be published before any
    descriptor, so a viewer never reads a descriptor pointing at missing tiles.
    """

    image_id: str
    facts: ImageFacts
    tiles_root: str
    tiles: tuple[str, ...]
    descriptors: tuple[str, ...]
    metadata_path: str
    timings: dict[str, float] = field(default_factory=dict)
    metadata_partial: str | None = None
    derivatives: tuple[str, ...] = ()  # e.g. the serving TIFF, published with the tiles
    palette: tuple[dict[str, Any], ...] = ()
    named_derivatives: tuple[dict[str, Any], ...] = ()  # DERIVATIVES_FILE's sets: name, path, width, height
    iiif_versions: tuple[int, ...] = (3,)  # the Image API versions of the static service, each under its own path
    presentation_versions: tuple[int, ...] = ()  # the Presentation versions of its manifests (none: IIIF_MANIFESTS off)

    def phases(self) -> tuple[Phase, Phase, Phase]:
        """THE publishing order, which every publisher follows: the tiles (and derivatives), then the
        descriptors that point at them, then the metadata JSON. A crash at any point leaves at most tiles no
        descriptor points at yet; the job record, written after the last phase, says "done"."""

        def staged(paths: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
            return tuple((f"{self.tiles_root}/{path}", path) for path in paths)

        return (
            Phase("tiles", staged(self.tiles + self.derivatives)),
            Phase("descriptors", staged(self.descriptors)),
            Phase("metadata", ((self.metadata_path, f"{self.image_id}.json"),), destination="metadata"),
        )

    @property
    def object_count(self) -> int:
        return sum(len(phase.files) for phase in self.phases())


@dataclass(frozen=True)
class SourceRef:
    """One version of one source object: what an S3 event names."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Route:
    LAMBDA = "lambda"
    BATCH = "batch"


class Status:
    QUEUED = "queued"  # handed to AWS Batch, waiting for a container
    RUNNING = "running"
    RETRYING = "retrying"  # a transient fault; Lambda or Batch will try again
    DONE = "done"
    FAILED = "failed"  # the input's fault: not retried
    GONE = "gone"  # the source object was deleted before it could be converted
    PAGES = "pages"  # a document split into pages, which are converting; final when the last page is
    WITHDRAWN = "withdrawn"  # taken down: its source was deleted, or someone withdrew it on the dashboard

    FINAL = frozenset({DONE, FAILED, GONE, WITHDRAWN})
