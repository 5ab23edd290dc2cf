"""What rendering from the published tiles costs in reads: one GET per tile touched, none warm, none twice, and the
tiles of a known image, or the published tile a viewer asks for, fetched while its record is still on its way."""

from __future__ import annotations

import threading

import pytest

from app import records
from app.pipeline.tiles import write_deep_zoom
from app.storage.s3 import S3Storage
from app.storage.tile_pyramid import TileCache, TilePyramid
from app.web import image_service
from tests.helpers import photo


def _local(tmp_path, reads: list[str], gate: threading.Event | None = None, out=None) -> TilePyramid:
    """The tiles of a 1500x1100 photo in a folder; ``reads`` gets each key read, ``gate`` holds the reads, ``out``
    is set once four reads are out."""
    write_deep_zoom(photo(1500, 1100), tmp_path, "p", 512, 85)
    lock = threading.Lock()

    def read(key: str) -> bytes:
        with lock:
            reads.append(key)
            if out is not None and len(reads) == 4:
                out.set()
        if gate is not None:
            assert gate.wait(10), "the gate was never opened"
        return (tmp_path / key).read_bytes()

    return TilePyramid("p", 1500, 1100, 512, "v1", read, TileCache(1 << 24))


def test_a_region_reads_the_tiles_it_touches_once_then_none(tmp_path):
    reads: list[str] = []
    tiles = _local(tmp_path, reads)
    top = len(tiles.pyramid.pages) - 1  # 11: 1500x1100
    crop = tiles.crop(0, (400, 300, 700, 400))  # columns 0-2, rows 0-1 of the full-resolution level
    assert (crop.width, crop.height) == (700, 400)
    assert sorted(reads) == sorted(f"p_files/{top}/{c}_{r}.jpg" for c in range(3) for r in range(2))
    tiles.crop(0, (512, 0, 512, 512))
    assert len(reads) == 6 and tiles.stats.gets == 6 and tiles.stats.cache_hits == 1  # warm: no read


def test_a_tile_on_its_way_is_waited_for_not_fetched_again(tmp_path):
    """A second reader of the same tiles, arriving while the first one's GETs are still out, waits for them: the
    GETs are held until it has found all four on their way."""
    reads: list[str] = []
    gate = threading.Event()

    class Watched(TileCache):
        waiting = 0

        def claim(self, key):
            coming, mine = super().claim(key)
            if not mine:
                Watched.waiting += 1
                if Watched.waiting == 4:
                    gate.set()
            return coming, mine

    all_out = threading.Event()
    tiles = _local(tmp_path, reads, gate, all_out)
    tiles.cache = Watched(1 << 24)
    box = (0, 0, 750, 550)  # the half-size level: two tiles across, two down
    with in_background_call(lambda: tiles.crop(1, box)) as first:
        assert all_out.wait(10)  # the first reader's four GETs are out, held at the gate
        second = tiles.crop(1, box)
    assert (first().width, first().height) == (second.width, second.height) == (750, 550)
    assert len(reads) == len(set(reads)) == 4 and tiles.stats.cache_hits == 0


def test_a_known_images_tiles_are_fetched_while_its_record_is_read(served, monkeypatch):
    served.put("img", photo(1500, 1100))
    client = served.client()
    assert client.get("/iiif/3/img/0,0,512,512/max/0/default.jpg").status_code == 200  # the record is known now
    overlapped, _ = _watch_reads(monkeypatch)
    assert client.get("/iiif/3/img/512,512,512,512/max/0/default.jpg").status_code == 200
    assert overlapped == [True]


@pytest.mark.parametrize(
    "seen,asked,read",
    [
        (False, "iiif/3/img/512,512,512,512/512,512/0/default.jpg", "img/512,512,512,512/512,512/0/default.jpg"),
        (False, "iiif/2/img/512,512,512,512/512,/0/default.jpg", "iiif/2/img/512,512,512,512/512,/0/default.jpg"),
        (True, "iiif/3/img/512,512,512,512/512,512/0/default.jpg", "img_files/11/1_1.jpg"),
    ],
    ids=["fresh process", "fresh process, 2.1", "image seen"],
)
def test_a_tile_is_fetched_while_its_record_is_read_and_answered_as_published(served, monkeypatch, seen, asked, read):
    """A viewer's tile costs one round trip even in a process that never read the image's record (the request's
    own path is the tile's published name), and none of the image's tiles once kept. Nothing is rendered."""
    served.put("img", photo(1500, 1100), static=(2, 3))
    monkeypatch.setattr(image_service, "_KNOWN", {})
    client = served.client()
    if seen:
        assert client.get("/iiif/3/img/info.json").status_code == 200
    overlapped, reads = _watch_reads(monkeypatch)
    answer = client.get(f"/{asked}")
    assert answer.data == served.cloud.read(served.settings.tiles_bucket, "img_files/11/1_1.jpg")
    assert (overlapped, reads) == ([True], [read])
    assert client.get(f"/{asked}").data == answer.data and reads == [read]  # kept


def _watch_reads(monkeypatch) -> tuple[list[bool], list[str]]:
    """Hold each job record read until a tile is asked for: ``overlapped`` gets whether one was (a serial endpoint
    asks for none before the record returns; the wait then times out), ``reads`` the keys of the tiles read."""
    tile_asked = threading.Event()
    overlapped: list[bool] = []
    reads: list[str] = []
    read_record, read_bytes = records.read_record, S3Storage.read_bytes

    def slow_record(*args, **kwargs):
        overlapped.append(tile_asked.wait(10))
        return read_record(*args, **kwargs)

    def watched(storage, bucket, key):
        reads.append(key)
        tile_asked.set()
        return read_bytes(storage, bucket, key)

    monkeypatch.setattr(records, "read_record", slow_record)
    monkeypatch.setattr(S3Storage, "read_bytes", watched)
    return overlapped, reads


class in_background_call:
    """Run ``work`` in a thread; calling the context's value returns its result (re-raising its error)."""

    def __init__(self, work) -> None:
        self.work, self.result, self.error = work, None, None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            self.error = error

    def __enter__(self):
        self.thread.start()
        return self._value

    def __exit__(self, *exc) -> None:
        self.thread.join(20)

    def _value(self):
        if self.error is not None:
            raise self.error
        return self.result
