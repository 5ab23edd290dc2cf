"""The only pyvips tiling code: Deep Zoom and IIIF level 0 (3.0, and 2.1 when asked) from one decode, one encode.

libvips' dzsave streams the source once and writes the Deep Zoom pyramid.
With no overlap, every Deep Zoom tile at or above the smallest IIIF scale
factor *is* a IIIF tile, so each IIIF version's layout is made of hard links
to the same encoded bytes (or, uploading, more keys for the same file). The
full-image sizes (and full/max) are stitched once from the small pyramid
levels (``jpeg``), never from the source, and linked under each version's name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyvips

from app.iiif import grid, serving
from app.iiif.paths import service_path
from app.pipeline import jpeg
from app.pipeline.finished_tiles import FinishedTiles

Progress = Callable[[float], None]
TileReady = Callable[[Path, tuple[str, ...]], None]  # a finished tile file, and its paths under the tiles root
IiifNames = Mapping[str, tuple[str, ...]]  # Deep Zoom tile path -> IIIF tile paths of the same pixels (iiif_names)


def write_deep_zoom(
    image: pyvips.Image,
    tiles_root: Path,
    image_id: str,
    tile_size: int,
    quality: int,
    on_progress: Progress | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> list[str]:
    """Run dzsave; return the Deep Zoom tile paths (relative to ``tiles_root``).

    ``on_file`` hears of each finished tile file once: while dzsave runs where
    the platform can tell (see ``finished_tiles``), else right after.
    """
    files_dir = tiles_root / f"{image_id}_files"
    files_dir.parent.mkdir(parents=True, exist_ok=True)  # ids may have folders: "box-3/letter-7"
    if on_progress is not None:
        image.set_progress(True)
        image.signal_connect("eval", lambda _image, progress: on_progress(progress.percent))
    with FinishedTiles(files_dir, grid.max_dz_level(image.width, image.height) + 1, on_file) as finished:
        # The quality goes in the suffix: dzsave's own Q argument does not reach the tile encoder (libvips 8.18).
        image.dzsave(
            str(tiles_root / image_id),
            tile_size=tile_size,
            overlap=0,
            suffix=f".jpg[Q={quality},keep=none]",
            keep="none",
            depth="onepixel",
        )
    (files_dir / "vips-properties.xml").unlink(missing_ok=True)
    tiles = sorted(
        f"{image_id}_files/{level.name}/{tile.name}"
        for level in os.scandir(files_dir)
        if level.is_dir()
        for tile in os.scandir(level.path)
        if tile.name.endswith(".jpg")
    )  # a tenth of rglob's time
    if on_file is not None:
        for path in (tiles_root / tile for tile in tiles):
            if path not in finished.reported:
                on_file(path)
    return tiles


def with_names(tiles_root: Path, names: IiifNames, on_tile: TileReady) -> Callable[[Path], None]:
    """``on_tile`` for a bare tile file: adds its Deep Zoom path and, at IIIF levels, its IIIF paths."""

    def report(path: Path) -> None:
        dz_path = str(path.relative_to(tiles_root))
        on_tile(path, (dz_path, *names.get(dz_path, ())))

    return report


def write_serving_tiff(image: pyvips.Image, path: Path, quality: int) -> None:
    """The serving TIFF (``app.iiif.serving``, ``SERVING_TIFF``): a pyramidal TIFF for another IIIF server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.tiffsave(
        str(path),
        tile=True,
        tile_width=serving.TILE_SIZE,
        tile_height=serving.TILE_SIZE,
        pyramid=True,
        compression="jpeg",
        Q=quality,
        bigtiff=True,
        keep="none",
    )


def make_iiif_folders(tiles_root: Path, names: IiifNames) -> None:
    """Create the IIIF tile folders (three per tile and version). Runs while dzsave works: on slow disks
    thousands of mkdir calls cost as much as the tiling, and they need no pixels."""
    made: set[str] = set()
    for iiif_path in (path for paths in names.values() for path in paths):
        parts = iiif_path.rsplit("/", 1)[0].split("/")  # the service's path, then region, size, rotation
        service = len(parts) - 3
        for depth in range(service, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in made:
                (tiles_root / path).mkdir(parents=depth == service, exist_ok=True)
                made.add(path)


def iiif_names(image_id: str, width: int, height: int, tile_size: int, versions: Sequence[int] = (3,)) -> IiifNames:
    """Deep Zoom tile path -> the canonical IIIF paths of the same pixels, one per published Image API version."""
    return {
        tile.dz_path(image_id): tuple(
            grid.image_path(image_id, width, height, tile.region, tile.size, version) for version in versions
        )
        for tile in grid.tiles(width, height, tile_size)
    }


def link_iiif_tiles(tiles_root: Path, names: IiifNames) -> None:
    """Give every IIIF tile its canonical paths by hard-linking the matching Deep Zoom tile."""
    for dz_path, iiif_paths in names.items():
        for iiif_path in iiif_paths:
            _link(tiles_root / dz_path, tiles_root / iiif_path)


def write_sizes(
    tiles_root: Path,
    image_id: str,
    width: int,
    height: int,
    tile_size: int,
    bound: int,
    quality: int,
    names: IiifNames,
    versions: Sequence[int] = (3,),
) -> list[str]:
    """Write ``full/max`` and every declared full-image size not already a tile, in each version's canonical
    form; return the new paths. A size that fits in one tile is its Deep Zoom level's tile; a larger one is
    stitched from its level's tiles and encoded once (``jpeg.stitched``); its other names are hard links to the
    same bytes.

    Reads only the Deep Zoom files, so it works whether or not the IIIF tile paths exist as files.
    """
    top = grid.max_dz_level(width, height)
    file_of = {iiif_path: dz_path for dz_path, iiif_paths in names.items() for iiif_path in iiif_paths}
    written, largest = [], None
    for scale, w, h in grid.declared_sizes(width, height, bound):
        wanted = [path for version in versions for path in _size_paths(version, image_id, width, height, w, h)]
        level_dir = f"{image_id}_files/{top - int(math.log2(scale))}"
        encoded = f"{level_dir}/0_0.jpg" if max(w, h) <= tile_size else None  # a level in one tile is that tile
        new = [path for path in wanted if path not in file_of]  # a single-tile IIIF level's tile is this size already
        for path in new:
            (tiles_root / path).parent.mkdir(parents=True, exist_ok=True)
            if encoded is None:
                (tiles_root / path).write_bytes(jpeg.stitched(tiles_root / level_dir, w, h, tile_size, quality))
                encoded = path
            else:
                _link(tiles_root / encoded, tiles_root / path)
        largest = largest or encoded
        written += new
    for version in versions:
        full_max = f"{service_path(version, image_id)}/full/max/0/default.jpg"
        if full_max not in file_of:  # max is the largest declared size
            (tiles_root / full_max).parent.mkdir(parents=True, exist_ok=True)
            _link(tiles_root / largest, tiles_root / full_max)
            written.append(full_max)
    return written


def _size_paths(version: int, image_id: str, width: int, height: int, w: int, h: int) -> list[str]:
    """Where a declared size lives: 3.0 ``full/w,h`` (even at full size), 2.1 ``full/w,``, and at full size
    ``full/full`` too (what OpenSeadragon asks for; ``w,`` is what a client picking from ``sizes`` asks for)."""
    if version == 3:
        return [f"{image_id}/full/{w},{h}/0/default.jpg"]
    canonical = grid.image_path(image_id, width, height, (0, 0, width, height), (w, h), version)
    by_width = f"{service_path(version, image_id)}/full/{w},/0/default.jpg"
    return list(dict.fromkeys([canonical, by_width]))


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target``, whose folder exists; a copy where links are impossible."""
    try:
        os.link(source, target)
    except OSError:  # filesystems without hard links
        target.write_bytes(source.read_bytes())
