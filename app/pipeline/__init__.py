"""The conversion: a local file in, a local staging folder out. Never sees S3 or Flask.

``convert`` is THE function the Lambda handler, the Batch container and the
CLI share. It writes ``out_dir/tiles/...`` in the public output layout and
``out_dir/metadata/ID.json``; the caller's storage adapter publishes them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import Any

import pyvips

from app.errors import CorruptImage, InputError, TransientError
from app.iiif import grid, serving
from app.iiif import info as iiif_info
from app.iiif import paths as iiif_paths
from app.model import Conversion, ImageFacts
from app.pipeline import background, jpeg, manifest, metadata, palette
from app.pipeline.colour import to_srgb8
from app.pipeline.inspect import DECODED_HERE, decode_master, open_image, vips_reason
from app.pipeline.tiles import (
    Progress,
    TileReady,
    iiif_names,
    link_iiif_tiles,
    make_iiif_folders,
    with_names,
    write_deep_zoom,
    write_serving_tiff,
    write_sizes,
)
from config import Settings


def convert(
    src: Path,
    out_dir: Path,
    settings: Settings,
    image_id: str,
    on_progress: Progress | None = None,
    source_name: str | None = None,
    on_tile: TileReady | None = None,
    tiling_turn: AbstractContextManager | None = None,
) -> Conversion:
    """Convert ``src`` into ``out_dir``; raise an ``InputError`` for files we will not convert.

    ``source_name`` is the name people know the file by (an S3 key's last part), when ``src`` is a download.
    ``on_tile(path, public_paths)`` hears of each tile as soon as it is final, so publishing can start early;
    with it, ``out_dir`` holds each tile once, under its Deep Zoom path only.
    ``tiling_turn`` is held while the file is decoded and tiled: a caller converting several images at once
    (the CLI) gives each a turn, one at a time, so one tiles while the one before writes its sizes and descriptors.
    Checking the header, starting exiftool and making folders need no pixels, so they happen before the turn,
    while the image before tiles; a refusal waits for the turn all the same, so that it is told in order.
    """
    clock = _Clock()
    source_name = source_name or src.name
    try:
        image, facts = read_header(src, settings)  # a JPEG 2000 or PDF master is decoded in turn, not here
    except InputError:
        with tiling_turn or contextlib.nullcontext():
            raise
    jpeg.warm_up()
    if settings.iiif_manifests:
        manifest.warm_up()
    clock.lap("inspect")
    tiles_root = out_dir / "tiles"
    embedded = metadata.read_embedded_soon(src, settings.exiftool_path)  # overlaps with tiling
    # A caller taking tiles through on_tile gets each IIIF path as a second name of its Deep Zoom file, so
    # only a caller reading this folder as it is (the CLI) needs the IIIF tree of hard links.
    linked = on_tile is None
    versions = tuple(sorted(settings.iiif_versions, reverse=True))  # 3.0 names first: a 2.1 name is an alias
    names = iiif_names(image_id, facts.width, facts.height, settings.tile_size, versions)
    # Beside libvips, at idle priority, so that it takes only the CPU time tiling leaves (the next image's, in the
    # CLI), in order: the IIIF folders while it tiles, then the hard links, the palette and the sizes. Nothing
    # there may call libvips: a thread its pool started from there would keep the idle priority.
    with ThreadPoolExecutor(max_workers=1, initializer=background.lower_this_thread) as side:
        folders_made = side.submit(make_iiif_folders, tiles_root, names) if linked else None
        with tiling_turn or contextlib.nullcontext():
            if image is None:
                image = decode_master(
                    src, facts.format, settings.max_pixels, pdf_dpi=settings.pdf_dpi, max_pages=settings.max_pages
                )
            dz_tiles = _decode_errors(
                write_deep_zoom,
                to_srgb8(image, facts, settings.flatten_background),
                tiles_root,
                image_id,
                settings.tile_size,
                settings.jpeg_quality,
                on_progress,
                with_names(tiles_root, names, on_tile) if on_tile else None,
            )
            vips_exif = metadata.vips_fields(image)  # header fields, read now so that the pixels can go
            master = image if settings.serving_tiff else None  # the serving TIFF reads a decoded master again
            image = None  # a master decoded into memory (JPEG 2000, PDF) is freed before the next one decodes
        if folders_made:
            folders_made.result()
        links_made = side.submit(link_iiif_tiles, tiles_root, names) if linked else None
        colours = side.submit(palette.dominant_colours, tiles_root / f"{image_id}_files", facts.width, facts.height)
        sizes_made = side.submit(
            write_sizes,
            tiles_root,
            image_id,
            facts.width,
            facts.height,
            settings.tile_size,
            settings.iiif_max_size,
            settings.jpeg_quality,
            names,
            versions,
        )
        clock.lap("tile")
        derivatives = [_serving_tiff(src, master, image_id, facts, settings, tiles_root)] if master is not None else []
        if derivatives:
            clock.lap("serving_tiff")
        iiif_tiles = list(dict.fromkeys(path for paths in names.values() for path in paths))
        sizes = sizes_made.result()
        if links_made:
            links_made.result()
    named = []
    if settings.derivatives_file:
        named = _named_derivatives(tiles_root, image_id, facts, settings, set(iiif_tiles) | set(sizes))
        clock.lap("derivatives")
    base = settings.public_base_url.rstrip("/")
    services = {version: f"{base}/{iiif_paths.service_path(version, image_id)}" for version in versions}
    infos = _write_infos(tiles_root, image_id, facts, settings, services)
    clock.lap("describe")
    tags, partial = metadata.collect(embedded, settings.exiftool_path)
    metadata_path = out_dir / "metadata" / f"{image_id}.json"
    document = _metadata_document(image_id, source_name, facts, tags, partial, vips_exif)
    document["palette"] = colours.result()
    _write_json(metadata_path, document)
    manifests = []
    if settings.iiif_manifests:
        manifests = _write_manifests(tiles_root, image_id, facts, settings, services, tags, source_name)
    clock.lap("metadata")
    return Conversion(
        image_id=image_id,
        facts=facts,
        tiles_root=str(tiles_root),
        tiles=tuple(dz_tiles + iiif_tiles),
        descriptors=tuple(
            sizes + [d["path"] for d in named if d.get("new")] + list(infos) + [f"{image_id}.dzi"] + manifests
        ),
        metadata_path=str(metadata_path),
        timings=clock.laps,
        metadata_partial=partial,
        derivatives=tuple(derivatives),
        palette=tuple(document["palette"]),
        named_derivatives=tuple(named),
        iiif_versions=versions,
        presentation_versions=tuple(sorted(settings.iiif_presentation_versions, reverse=True))
        if settings.iiif_manifests
        else (),
    )


def read_header(src: Path, settings: Settings) -> tuple[pyvips.Image | None, ImageFacts]:
    """``open_image`` within the settings' limits, decoding nothing yet (None for a JPEG 2000 or PDF master,
    which ``decode_master`` decodes; the lazily loaded image otherwise): the checks before any pixel."""
    return open_image(
        src,
        settings.allowed_formats,
        settings.max_pixels,
        pdf_dpi=settings.pdf_dpi,
        max_pages=settings.max_pages,
        decode=False,
    )


def _write_infos(
    tiles_root: Path, image_id: str, facts: ImageFacts, settings: Settings, services: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """Each published version's ``info.json`` (path -> document), each naming the other version's service."""
    args = (facts.width, facts.height, settings.tile_size, settings.iiif_max_size)
    infos = {}
    if 3 in services:
        infos[f"{image_id}/info.json"] = iiif_info.level0(services[3], *args, v2_service=services.get(2))
    if 2 in services:
        infos[f"{iiif_paths.service_path(2, image_id)}/info.json"] = iiif_info.level0_v2(
            services[2], *args, v3_service=services.get(3)
        )
    for path, info in infos.items():
        _write_json(tiles_root / path, info)
    return infos


def _write_manifests(
    tiles_root: Path,
    image_id: str,
    facts: ImageFacts,
    settings: Settings,
    services: dict[int, str],
    tags: dict[str, Any],
    source_name: str,
) -> list[str]:
    """The Presentation 3 manifest at ``ID/manifest.json`` (its images name every published image service) and,
    when asked, a Presentation 2.1 one beside the 2.1 service. Returns their paths."""
    thumbnail = grid.thumbnail_size(facts.width, facts.height, settings.iiif_max_size)
    name = PurePosixPath(source_name).stem
    _, *bounded = grid.max_size(facts.width, facts.height, settings.iiif_max_size)
    paths = []
    if 3 in settings.iiif_presentation_versions:
        path = f"{image_id}/manifest.json"
        url = f"{settings.public_base_url.rstrip('/')}/{path}"
        _write_json(tiles_root / path, manifest.build(services, facts, tuple(bounded), tags, name, thumbnail, url))
        paths.append(path)
    if 2 in settings.iiif_presentation_versions:
        path = f"{iiif_paths.service_path(2, image_id)}/manifest.json"
        document = manifest.build_v2(services[2], facts, tuple(bounded), tags, name, thumbnail)
        _write_json(tiles_root / path, document)
        paths.append(path)
    return paths


def _named_derivatives(
    tiles_root: Path, image_id: str, facts: ImageFacts, settings: Settings, published: set[str]
) -> list[dict[str, Any]]:
    """Render the configured named derivatives from the staged Deep Zoom tiles (imported here: most conversions
    have none)."""
    from app.iiif.request import Limits
    from app.pipeline.derivatives import load, render_all

    limits = Limits(settings.iiif_max_width, settings.iiif_max_height, settings.iiif_max_area)
    return render_all(
        image_id,
        facts.width,
        facts.height,
        settings.tile_size,
        load(settings.derivatives_file),
        limits,
        settings.jpeg_quality,
        tiles_root,
        published,
    )


def _serving_tiff(
    src: Path, image: pyvips.Image, image_id: str, facts: ImageFacts, settings: Settings, tiles_root: Path
) -> str:
    """Write the dynamic endpoint's pyramidal TIFF: a second decode, as the sequential one is spent, except for
    the formats decoded into memory (JPEG 2000, PDF), whose pixels are read again where they are."""
    again = image if facts.format in DECODED_HERE else open_image(src, settings.allowed_formats, settings.max_pixels)[0]
    key = serving.key(image_id)
    _decode_errors(
        write_serving_tiff, to_srgb8(again, facts, settings.flatten_background), tiles_root / key, settings.jpeg_quality
    )
    return key


def _decode_errors(write, *args):
    """Classify libvips failures during the streaming decode: a full disk is transient, the rest is the file."""
    try:
        return write(*args)
    except pyvips.Error as error:
        reason = vips_reason(error)
        if "No space left" in reason or "Disk quota" in reason:
            raise TransientError(f"out of disk space while tiling: {reason}") from None
        raise CorruptImage(f"the pixel data is damaged or truncated: {reason}") from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TransientError(f"out of disk space while tiling: {error}") from None
        raise


def _metadata_document(
    image_id: str,
    source_name: str,
    facts: ImageFacts,
    tags: dict[str, Any],
    partial: str | None,
    vips_exif: dict[str, Any],
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": image_id,
        "source": {"name": source_name},
        "image": facts.to_dict(),
        "partial": partial,
        "exiftool": tags,
    }
    if partial:
        document["vips_exif"] = vips_exif
    return document


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str))


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now
