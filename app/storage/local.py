"""Folders as storage: the CLI's publisher.

A conversion is staged in a hidden folder inside the tiles folder (same file
system, so publishing is a rename per file), published tiles first and
descriptors last, and the staging folder is removed whatever happens.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from app.model import Conversion


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
        """Move the staged files into place: tiles, then descriptors, then metadata; prune stale tiles."""
        root = Path(conversion.tiles_root)
        before = self._published_files(conversion.image_id)
        for relative in (*conversion.tiles, *conversion.descriptors):
            _place(root / relative, self.tiles_dir / relative)
        _place(Path(conversion.metadata_path), self.metadata_dir / f"{conversion.image_id}.json")
        for stale in before - set(conversion.tiles) - set(conversion.descriptors):
            (self.tiles_dir / stale).unlink(missing_ok=True)

    def _published_files(self, image_id: str) -> set[str]:
        """What an earlier conversion of this id left, so a smaller re-conversion leaves no orphans."""
        patterns = ((f"{image_id}_files", "*/*.jpg"), (image_id, "*/*/0/default.jpg"))  # not nested ids' files
        return {str(path.relative_to(self.tiles_dir))
                for folder, pattern in patterns for path in (self.tiles_dir / folder).glob(pattern)}


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
