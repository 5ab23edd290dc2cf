"""Settings: one frozen dataclass built from the environment.

This is the only module that reads ``os.environ``. Every field names its
variable and says what it is for; ``python -m app settings`` prints them all
with their current values, and the README's table is generated from the same
metadata, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent  # where templates/ and static/ are, in a clone and when deployed


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    # Conversion
    tile_size: int = _setting(
        "TILE_SIZE",
        512,
        "Tile edge in pixels, shared by Deep Zoom and IIIF (no overlap, so both use the same encoded tiles).",
    )
    jpeg_quality: int = _setting("JPEG_QUALITY", 85, "JPEG quality of tiles and derivatives (1-100).")
    max_pixels: int = _setting(
        "MAX_PIXELS", 2_000_000_000, "Largest width x height accepted at all, checked from the header before decoding."
    )
    iiif_max_size: int = _setting(
        "IIIF_MAX_SIZE",
        2048,
        "Bound on the longest side of IIIF full/max and of the declared sizes; larger images declare maxWidth. "
        "At least twice TILE_SIZE.",
    )
    iiif_versions: tuple[int, ...] = _setting(
        "IIIF_VERSIONS",
        (3,),
        "IIIF Image API versions of the static level-0 service: 3, or 2,3 to add a 2.1 service at iiif/2/ID/ (for "
        "Mirador 2, Leaflet-IIIF and other 2.x clients), or 2 alone. 2.1 reuses the same encoded tiles: only more "
        "objects (uploads), no second encode.",
    )
    iiif_presentation_versions: tuple[int, ...] = _setting(
        "IIIF_PRESENTATION_VERSIONS",
        (3,),
        "IIIF Presentation versions of the per-image manifest: 3 (ID/manifest.json), or 2,3 to add a Presentation "
        "2.1 manifest at iiif/2/ID/manifest.json (needs 2 in IIIF_VERSIONS).",
    )
    allowed_formats: tuple[str, ...] = _setting(
        "ALLOWED_FORMATS",
        ("jpeg", "png", "tiff", "webp", "jp2k", "pdf"),
        "Comma-separated formats accepted, decided from the file's content (also possible: gif, heif). jp2k is JPEG "
        "2000 (.jp2, .j2k, single-codestream .jpx); a PDF, like a TIFF of several pages, becomes an item of one image "
        "per page.",
    )
    pdf_dpi: int = _setting(
        "PDF_DPI", 300, "Resolution PDF pages are rendered at (an A4 page at 300 dpi is 2481x3508, 8.7 MP)."
    )
    max_pages: int = _setting(
        "MAX_PAGES",
        1000,
        "Most pages a PDF or multi-page TIFF may have; each page is converted as an image of its own. More is refused.",
    )
    flatten_background: tuple[int, ...] = _setting(
        "FLATTEN_BACKGROUND", (255, 255, 255), "R,G,B that transparent pixels are flattened onto for JPEG tiles."
    )
    public_base_url: str = _setting(
        "PUBLIC_BASE_URL",
        "http://127.0.0.1:8000",
        "Public URL of the tiles (bucket or folder); info.json ids and manifests are built on it.",
    )
    serving_tiff: bool = _setting(
        "SERVING_TIFF",
        False,
        "Also write a private tiled pyramidal TIFF (derivatives/ID.tif) for another IIIF server (serverless-iiif);"
        " the dynamic endpoint renders from the tiles. Costs a second decode and a second copy in storage.",
    )
    iiif_manifests: bool = _setting(
        "IIIF_MANIFESTS",
        True,
        "Also write a IIIF Presentation 3 manifest per image (ID/manifest.json). Off where manifests come from "
        "elsewhere (a collection system, or collection runs' item manifests): each process then skips iiif-prezi3's "
        "import, about 0.4 s of CPU.",
    )
    derivatives_file: str = _setting(
        "DERIVATIVES_FILE",
        "",
        "JSON file of named IIIF parameter sets made for every image from its tiles (e.g. derivatives.example.json).",
    )
    exiftool_path: str = _setting(
        "EXIFTOOL_PATH",
        "exiftool",
        "The exiftool executable; when missing, metadata falls back to libvips' EXIF fields.",
    )
    # Buckets and routing (S3 event handler)
    source_bucket: str = _setting(
        "SOURCE_BUCKET", "tiler-source", "Bucket whose ObjectCreated events trigger conversion."
    )
    tiles_bucket: str = _setting(
        "TILES_BUCKET",
        "tiler-tiles",
        "Bucket that receives tiles, descriptors and manifests, served through CloudFront (or public itself with "
        "provision --public-bucket).",
    )
    cdn_distribution_id: str = _setting(
        "CDN_DISTRIBUTION_ID",
        "",
        "CloudFront distribution serving the tiles (set by provision); re-converting an image invalidates its paths "
        "there (empty: no CDN, nothing to invalidate).",
    )
    metadata_bucket: str = _setting(
        "METADATA_BUCKET", "tiler-metadata", "Private bucket for metadata JSON and job records."
    )
    batch_job_queue: str = _setting(
        "BATCH_JOB_QUEUE",
        "",
        "AWS Batch queue for images too big for Lambda (empty: such images fail with a clear reason).",
    )
    batch_job_definition: str = _setting("BATCH_JOB_DEFINITION", "", "AWS Batch job definition running batch_fallback.")
    lambda_max_pixels: int = _setting("LAMBDA_MAX_PIXELS", 150_000_000, "Images with more pixels go to AWS Batch.")
    lambda_max_jp2_pixels: int = _setting(
        "LAMBDA_MAX_JP2_PIXELS",
        120_000_000,
        "JPEG 2000 images with more pixels go to AWS Batch: a decode is held in memory whole, about 18 MB per "
        "megapixel measured (20 assumed), so 120 MP fit a 3,008 MB Lambda. One that would not fit BATCH_MEMORY_MB is "
        "refused.",
    )
    lambda_max_bytes: int = _setting(
        "LAMBDA_MAX_BYTES", 1_000_000_000, "Source objects larger than this go to AWS Batch."
    )
    lambda_megapixels_per_second: int = _setting(
        "LAMBDA_MEGAPIXELS_PER_SECOND",
        15,
        "Conservative conversion speed used to decide whether a job can finish in Lambda's remaining time.",
    )
    stale_after_seconds: int = _setting(
        "STALE_AFTER_SECONDS",
        120,
        "A running job whose record has not moved for this long is taken over by the next delivery of its event "
        "(a failed delivery comes back after RETRY_BACKOFF_SECONDS, doubled each time).",
    )
    event_queue: str = _setting(
        "EVENT_QUEUE",
        "",
        "SQS queue S3 sends the source bucket's events to, consumed by the function (set by provision; empty: no "
        "queue, so the stuck-job sweep and the dead-letter list are off).",
    )
    dead_letter_queue: str = _setting(
        "DEAD_LETTER_QUEUE",
        "",
        "SQS queue where an event lands after MAX_RECEIVES failed deliveries; the dashboard lists and re-drives it "
        "(set by provision).",
    )
    max_receives: int = _setting(
        "MAX_RECEIVES",
        5,
        "Deliveries of one event before SQS sets it aside in DEAD_LETTER_QUEUE (the queue's maxReceiveCount).",
    )
    maximum_concurrency: int = _setting(
        "MAXIMUM_CONCURRENCY",
        10,
        "Most conversions running at once in Lambda (the event source mapping's ScalingConfig, 2-1000): a burst "
        "waits in the queue instead of taking the account's concurrency from the dashboard.",
    )
    event_batch_size: int = _setting(
        "EVENT_BATCH_SIZE", 5, "Events one invocation takes from the queue (each succeeds or fails on its own)."
    )
    retry_backoff_seconds: int = _setting(
        "RETRY_BACKOFF_SECONDS",
        60,
        "A failed event comes back after this long, doubled at each further delivery (at most 15 minutes).",
    )
    max_redrives: int = _setting(
        "MAX_REDRIVES",
        3,
        "Times the sweep re-sends a job stuck in running or retrying before recording it failed.",
    )
    batch_vcpus: float = _setting("BATCH_VCPUS", 4.0, "vCPUs of the Batch job definition (for the cost figures).")
    batch_memory_mb: int = _setting(
        "BATCH_MEMORY_MB", 16384, "Memory of the Batch job definition in MB (for the cost figures)."
    )
    aws_batch_job_id: str = _setting(
        "AWS_BATCH_JOB_ID", "", "Set by AWS Batch inside the container; names the job's owner in records."
    )
    upload_workers: int = _setting(
        "UPLOAD_WORKERS",
        32,
        "Uploads in flight at once when publishing to S3 (also the threads and connections for other parallel S3 "
        "calls).",
    )
    work_dir: str = _setting(
        "WORK_DIR", tempfile.gettempdir(), "Local scratch space for downloads and staging (Lambda: /tmp)."
    )
    # Dynamic IIIF endpoint (/iiif/3/...)
    iiif_max_width: int = _setting(
        "IIIF_MAX_WIDTH",
        4096,
        "Widest image the dynamic IIIF endpoint renders, advertised as maxWidth (wider: 403; ^max upscales up to it).",
    )
    iiif_max_height: int = _setting(
        "IIIF_MAX_HEIGHT", 4096, "Tallest image the dynamic IIIF endpoint renders, advertised as maxHeight."
    )
    iiif_max_area: int = _setting(
        "IIIF_MAX_AREA",
        4_194_304,
        "Most pixels (width x height) the dynamic IIIF endpoint renders, advertised as maxArea. Answers too big for a "
        "Lambda response (over 4.5 MB: PNG or TIFF of a photo from about 2 MP) are stored once in the tiles bucket "
        "under cache/iiif/3/ and answered with a redirect there.",
    )
    iiif_block_cache_mb: int = _setting(
        "IIIF_BLOCK_CACHE_MB",
        64,
        "Memory per process for published tiles the dynamic endpoint has read from S3, kept across warm invocations.",
    )
    # Dashboard
    dashboard_password: str = _setting(
        "DASHBOARD_PASSWORD",
        "",
        "Plain password for uploads and retries, for the local demo; deployed, use DASHBOARD_PASSWORD_HASH. Without "
        "either the dashboard is read-only.",
    )
    dashboard_password_hash: str = _setting(
        "DASHBOARD_PASSWORD_HASH",
        "",
        "Slow hash of the dashboard's password (python -m app hash-password); preferred to DASHBOARD_PASSWORD.",
    )
    secret_key: str = _setting(
        "SECRET_KEY",
        "",
        "Signs the dashboard's session cookie (default: random, made once and kept at secrets/session-key in "
        "METADATA_BUCKET).",
    )
    session_hours: float = _setting("SESSION_HOURS", 12.0, "Hours a dashboard sign-in lasts (at most 48).")
    dashboard_base_url: str = _setting(
        "DASHBOARD_BASE_URL",
        "",
        "The API's public URL (e.g. https://ID.execute-api.REGION.amazonaws.com/dev): absolute URLs the app emits are "
        "built on it, never on the Host header.",
    )
    page_size: int = _setting("PAGE_SIZE", 50, "Images per dashboard page.")
    upload_prefix: str = _setting(
        "UPLOAD_PREFIX",
        "uploads/",
        "Folder of the source bucket that dashboard uploads go to, each under a fresh key (the file name and a random "
        "suffix); never tasks/.",
    )
    upload_max_bytes: int = _setting(
        "UPLOAD_MAX_BYTES",
        5 * 1024**3,
        "Largest dashboard upload in bytes; the default, 5 GiB, is the most S3 takes in one POST, room for multi-GB "
        "TIFF masters (they go to Batch).",
    )
    upload_content_types: tuple[str, ...] = _setting(
        "UPLOAD_CONTENT_TYPES",
        (
            "image/jpeg",
            "image/png",
            "image/tiff",
            "image/webp",
            "image/gif",
            "image/heic",
            "image/heif",
            "image/jp2",
            "image/jpx",
            "application/pdf",
        ),
        "Comma-separated media types a dashboard upload may have; each form is signed for the file's own, and S3 "
        "refuses any other.",
    )
    upload_form_minutes: int = _setting(
        "UPLOAD_FORM_MINUTES", 10, "Minutes a signed upload form can be used; S3 refuses a POST that starts later."
    )
    # Unit prices for cost estimates (USD; us-east-1 list prices, change to your region's)
    price_lambda_gb_second: float = _setting(
        "PRICE_LAMBDA_GB_SECOND", 0.0000166667, "Lambda price per GB-second (x86)."
    )
    price_batch_vcpu_hour: float = _setting("PRICE_BATCH_VCPU_HOUR", 0.04048, "Fargate price per vCPU-hour.")
    price_batch_gb_hour: float = _setting("PRICE_BATCH_GB_HOUR", 0.004445, "Fargate price per GB-hour.")
    price_s3_write_per_1000: float = _setting(
        "PRICE_S3_WRITE_PER_1000", 0.005, "S3 price per 1,000 PUT/COPY/POST/LIST requests."
    )
    price_s3_read_per_1000: float = _setting("PRICE_S3_READ_PER_1000", 0.0004, "S3 price per 1,000 GET/HEAD requests.")
    price_s3_gb_month: float = _setting("PRICE_S3_GB_MONTH", 0.023, "S3 Standard storage price per GB-month.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f.metadata["env"], raw.strip(), f.default)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 64 <= self.tile_size <= 4096:
            raise ValueError("TILE_SIZE must be between 64 and 4096")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("JPEG_QUALITY must be between 1 and 100")
        if len(self.flatten_background) != 3 or not all(0 <= v <= 255 for v in self.flatten_background):
            raise ValueError("FLATTEN_BACKGROUND must be three numbers 0-255, e.g. 255,255,255")
        if self.iiif_max_size < 2 * self.tile_size:  # full/max's longest side is over half the bound: a tile fits
            raise ValueError("IIIF_MAX_SIZE must be at least twice TILE_SIZE (full/max may not be smaller than a tile)")
        for name, versions in (
            ("IIIF_VERSIONS", self.iiif_versions),
            ("IIIF_PRESENTATION_VERSIONS", self.iiif_presentation_versions),
        ):
            if not versions or not set(versions) <= {2, 3} or len(set(versions)) != len(versions):
                raise ValueError(f"{name} must be 3, 2,3 or 2")
        if 2 in self.iiif_presentation_versions and 2 not in self.iiif_versions:
            raise ValueError("IIIF_PRESENTATION_VERSIONS=2 needs 2 in IIIF_VERSIONS: a 2.1 manifest names 2.1 services")
        if min(self.iiif_max_width, self.iiif_max_height, self.iiif_max_area, self.iiif_block_cache_mb) < 1:
            raise ValueError(
                "IIIF_MAX_WIDTH, IIIF_MAX_HEIGHT, IIIF_MAX_AREA and IIIF_BLOCK_CACHE_MB must be at least 1"
            )
        if not self.upload_prefix.endswith("/") or self.upload_prefix.startswith(("/", "tasks/", "pages/")):
            raise ValueError(
                "UPLOAD_PREFIX must be a folder such as uploads/ (ending in /), not under tasks/, "
                "where collection task files start runs, nor pages/, where documents' pages go"
            )
        if not 36 <= self.pdf_dpi <= 1200:
            raise ValueError("PDF_DPI must be between 36 and 1200")
        if self.max_pages < 1:
            raise ValueError("MAX_PAGES must be at least 1")
        if not 1 <= self.upload_max_bytes <= 5 * 1024**3:
            raise ValueError("UPLOAD_MAX_BYTES must be between 1 and 5368709120 (5 GiB, the most S3 takes in one POST)")
        if not 1 <= self.upload_form_minutes <= 60:
            raise ValueError("UPLOAD_FORM_MINUTES must be between 1 and 60")
        if not 2 <= self.maximum_concurrency <= 1000:
            raise ValueError("MAXIMUM_CONCURRENCY must be between 2 and 1000 (what Lambda's ScalingConfig takes)")
        if not 1 <= self.event_batch_size <= 10:
            raise ValueError("EVENT_BATCH_SIZE must be between 1 and 10")
        if not 1 <= self.max_receives <= 1000:
            raise ValueError("MAX_RECEIVES must be between 1 and 1000 (SQS's maxReceiveCount)")
        if self.max_redrives < 0 or self.retry_backoff_seconds < 0:
            raise ValueError("MAX_REDRIVES and RETRY_BACKOFF_SECONDS must not be negative")
        if not 0 < self.session_hours <= 48:  # the metadata bucket's lifecycle removes sessions after two days
            raise ValueError("SESSION_HOURS must be more than 0 and at most 48")

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) for every setting."""
        return [
            (f.metadata["env"], _show(f.default), f.metadata["doc"]) for f in fields(cls) if f.default is not MISSING
        ]


def _parse(env: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw.replace("_", ""))
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            items = tuple(item.strip() for item in raw.split(",") if item.strip())
            return (
                tuple(int(i) for i in items)
                if default and isinstance(default[0], int)
                else tuple(i.lower() for i in items)
            )
        return raw
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not a valid value (default {_show(default)})") from None


def _show(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
