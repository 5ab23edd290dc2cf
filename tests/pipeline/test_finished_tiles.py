"""Tiles are handed over as soon as libvips closes them, each once, under every path it is published as."""

import sys
import threading
from pathlib import Path

import pytest

from app.pipeline import convert
from app.pipeline.finished_tiles import FinishedTiles
from tests.helpers import photo


@pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's; elsewhere tiles are reported after tiling")
def test_a_closed_tile_is_reported_while_the_watch_is_still_open(tmp_path):
    seen = threading.Event()
    with FinishedTiles(tmp_path / "x_files", 3, lambda path: seen.set()) as finished:
        assert sorted(p.name for p in (tmp_path / "x_files").iterdir()) == ["0", "1", "2"]  # made before dzsave
        (tmp_path / "x_files" / "2" / "0_0.jpg").write_bytes(b"a finished tile")
        assert seen.wait(10)
    assert finished.reported == {tmp_path / "x_files" / "2" / "0_0.jpg"}


def test_every_public_tile_path_is_reported_once_and_the_folder_holds_each_tile_once(tmp_path, settings):
    src = tmp_path / "photo.jpg"
    photo(1500, 1100).jpegsave(str(src))
    reports = []
    conversion = convert(
        src, tmp_path / "out", settings, "img", on_tile=lambda path, names: reports.append((path, names))
    )

    root = Path(conversion.tiles_root)
    names = [name for _, paths in reports for name in paths]
    assert sorted(names) == sorted(conversion.tiles)  # Deep Zoom and IIIF, nothing twice, nothing missing
    for path, (dz_path, *iiif_path) in reports:
        assert path == root / dz_path and path.is_file()
        assert len(iiif_path) == (1 if dz_path.startswith(("img_files/11/", "img_files/10/", "img_files/9/")) else 0)
    assert not list((root / "img").glob("*,*,*,*"))  # no IIIF tree of links: the caller names the files itself
    assert (root / "img" / "full" / "max" / "0" / "default.jpg").is_file()  # descriptors are still files
