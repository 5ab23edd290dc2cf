"""Folders as storage: the CLI's publisher.

A conversion is staged in a hidden folder inside the tiles folder (same file
system), then published by renaming whole folders: the Deep Zoom tile
folder, then the IIIF folder (region by region when an earlier conversion of
the id is there), then the descriptors, then the metadata.
Renames make publishing cheap and leave no orphans from an earlier, larger
conversion of the same id. The staging folder is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.iiif.paths import VERSIONS, service_path
from app.model import Conversion

_IIIF_REGION = re.compile(r"^(full|square|\d+,\d+,\d+,\d+)$")  # folders a IIIF image's own files live in


class LocalStorage:
    def __init__(self, tiles_dir: Path, metadata_dir: Path) -> None:
        self.tiles_dir = tiles_dir
        self.metadata_dir = metadata_dir

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder next to the outputs; gone afterwards even on failure or Ctrl-C."""
        self.tiles_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.tiles_dir))
        try:
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def publish(self, conversion: Conversion) -> None:
        """Move the staged conversion into place in ``Conversion.phases`` order, whole folders where it can."""
        for phase in conversion.phases():
            if phase.name == "tiles":
                self._move_tile_folders(conversion)
            folder = self.metadata_dir if phase.destination == "metadata" else self.tiles_dir
            for staged, key in phase.files:
                if os.path.lexists(staged):  # not moved with its folder: derivatives, the .dzi, the metadata
                    _move_file(Path(staged), folder / key)

    def _move_tile_folders(self, conversion: Conversion) -> None:
        """The Deep Zoom tile folder, then each IIIF version's folder: region by region over an earlier
        conversion of the id, else in one rename, with its descriptors (they land together with the tiles they
        point at). A version this conversion does not publish loses its regions and descriptors."""
        root, image_id = Path(conversion.tiles_root), conversion.image_id
        trash = root / ".replaced"
        _replace(root / f"{image_id}_files", self.tiles_dir / f"{image_id}_files", trash)
        for version in VERSIONS:
            service = service_path(version, image_id)
            staged, target = root / service, self.tiles_dir / service
            if version not in conversion.iiif_versions:
                staged.mkdir(parents=True, exist_ok=True)  # nothing of this version: its old regions go
                if not target.exists():
                    continue
            if target.exists():
                _replace_regions(staged, target, trash)
                if version not in conversion.iiif_versions:
                    for name in ("info.json", "manifest.json"):
                        if (target / name).exists():
                            _replace(None, target / name, trash)
            else:
                _replace(staged, target, trash)

    def publish_file(self, staged: Path, path: str) -> None:
        """Move one staged file (an item's manifest) to ``path`` under the tiles folder, in one rename."""
        _move_file(staged, self.tiles_dir / path)


def _replace_regions(staged: Path, target: Path, trash: Path) -> None:
    """Replace an earlier conversion's IIIF folder region by region: ids nest ("box-3" holds "box-3/letter-7")."""
    regions = {entry.name for entry in staged.iterdir() if entry.is_dir()}
    for name in sorted(regions):
        _replace(staged / name, target / name, trash)
    for old in target.iterdir():  # regions an earlier conversion of this id had and this one has not
        if old.is_dir() and _IIIF_REGION.match(old.name) and old.name not in regions:
            _replace(None, old, trash)


def _replace(source: Path | None, target: Path, trash: Path) -> None:
    """Put ``source`` where ``target`` is, moving any old ``target`` into ``trash`` first."""
    if target.exists():
        trash.mkdir(exist_ok=True)
        os.rename(target, Path(tempfile.mkdtemp(dir=trash)) / target.name)
    if source is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)


def _move_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
