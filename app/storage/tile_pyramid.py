"""Pixels of a published image read back from its own Deep Zoom tiles: the dynamic endpoint's source.

The conversion already publishes a pyramid of ``TILE_SIZE`` tiles, one object
each (``ID_files/LEVEL/COL_ROW.jpg``, overlap 0), whose geometry is arithmetic
(``app.iiif.grid``): level ``max - k`` is the image at ``1/2**k``, each level
half the one before, rounded up. So a region of a level is the tiles it
touches, fetched in parallel (one GET each, at most ``FETCH_WORKERS`` at a
time), decoded, joined and cropped: no second copy of the image, no directory
to read. Encoded tiles are kept in a small LRU per process (keyed by the
image's published version, so a replaced image is never mixed with its
predecessor); a warm 512-pixel request costs no GET. A tile being fetched is
fetched once: a second reader waits for the first one's GET, so concurrent
requests (and the endpoint's early rendering while the job record is on its
way) never pay twice.

``read(key)`` is the only way out: an S3 GET for the endpoint, a file read
for the conversion's own staged tiles (named derivatives), so the pipeline and
the endpoint render through the same code.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyvips

from app.iiif import grid
from app.pipeline.render import Pyramid

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
FETCH_WORKERS = 16  # tiles of one request in flight at once: a 1024-pixel answer touches at most 9 to 12
_POOL = ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="tiles")


class TileCache:
    """A thread-safe LRU of encoded tiles, bounded by their total bytes, that knows which tiles are on their way."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tiles: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._coming: dict[tuple, Future] = {}

    def claim(self, key: tuple) -> tuple[Future, bool]:
        """The future of ``key``'s bytes and whether the caller must fetch them (False: someone already is)."""
        with self._lock:
            coming = self._coming.get(key)
            if coming is not None:
                return coming, False
            coming = self._coming[key] = Future()
            return coming, True

    def settle(self, key: tuple, coming: Future, tile: bytes | None, error: BaseException | None) -> None:
        """The fetch of ``key`` is over: keep the tile, then wake whoever waits for it."""
        if tile is not None:
            self.put(key, tile)
        with self._lock:
            self._coming.pop(key, None)
        if error is not None:
            coming.set_exception(error)
        else:
            coming.set_result(tile)

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple, tile: bytes) -> None:
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._bytes += len(tile)
            while self._bytes > self.capacity and self._tiles:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= len(dropped)

    def forget(self, version: str) -> None:
        """Drop every tile kept under ``version``: the image has moved on, and tiles read while its new version
        was going up may be the new one's pixels under the old name."""
        with self._lock:
            for key in [key for key in self._tiles if key[0] == version]:
                self._bytes -= len(self._tiles.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0
            self._coming.clear()


TILES = TileCache(DEFAULT_CACHE_BYTES)  # one per process: warm Lambda invocations share it


@dataclass
class ReadStats:
    """What reading cost: GETs made and bytes fetched, tiles found cached."""

    gets: int = 0
    bytes_fetched: int = 0
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fetched(self, size: int) -> None:
        with self._lock:
            self.gets += 1
            self.bytes_fetched += size


@dataclass
class TilePyramid:
    """One published version of an image's Deep Zoom pyramid; ``crop`` is what ``render.render`` reads."""

    image_id: str
    width: int
    height: int
    tile_size: int
    version: str  # what the cache keys by: the published source's ETag (or the staging folder's own name)
    read: Callable[[str], bytes]
    cache: TileCache | None = None
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def pyramid(self) -> Pyramid:
        """Every Deep Zoom level, full resolution first, down to the last one wider than a tile's single pixel."""
        top = grid.max_dz_level(self.width, self.height)
        return Pyramid(tuple(grid.level_size(self.width, self.height, 2**k) for k in range(top + 1)))

    def crop(self, index: int, box: tuple[int, int, int, int]) -> pyvips.Image:
        """``box`` (left, top, width, height) of level ``index`` (0: full resolution), from the tiles it touches."""
        left, top, width, height = box
        cols, rows, keys = self._touched(index, box)
        tiles = [pyvips.Image.new_from_buffer(data, "", fail_on="error") for data in self._fetch_all(keys)]
        joined = tiles[0] if len(tiles) == 1 else pyvips.Image.arrayjoin(tiles, across=len(cols))
        return joined.crop(left - cols.start * self.tile_size, top - rows.start * self.tile_size, width, height)

    def encoded(self, tile: grid.Tile) -> bytes:
        """One tile's bytes as published (kept, on their way, or fetched now): the answer to a request for exactly
        that tile."""
        return self._fetch_all([tile.dz_path(self.image_id)])[0]

    def keep(self, tile: grid.Tile, data: bytes) -> None:
        """Keep ``data`` as ``tile``'s bytes: the same file read under another of its names."""
        self._cache.put((self.version, tile.dz_path(self.image_id)), data)

    @property
    def _cache(self) -> TileCache:
        return self.cache or TILES

    def _touched(self, index: int, box: tuple[int, int, int, int]) -> tuple[range, range, list[str]]:
        left, top, width, height = box
        size = self.tile_size
        cols = range(left // size, (left + width - 1) // size + 1)
        rows = range(top // size, (top + height - 1) // size + 1)
        level = grid.max_dz_level(self.width, self.height) - index
        return cols, rows, [f"{self.image_id}_files/{level}/{col}_{row}.jpg" for row in rows for col in cols]

    def _fetch_all(self, keys: list[str]) -> list[bytes]:
        """Each key's bytes: kept, on their way (waited for), or fetched now, the missing ones in parallel."""
        found: dict[str, bytes | Future] = {}
        mine: list[tuple[str, Future]] = []
        for key in keys:
            tile = self._cache.get((self.version, key))
            if tile is not None:
                found[key] = tile
                self.stats.cache_hits += 1
                continue
            coming, fetch = self._cache.claim((self.version, key))
            found[key] = coming
            if fetch:
                mine.append((key, coming))
        for key, coming in mine[1:]:
            _POOL.submit(self._fetch, key, coming)
        if mine:
            self._fetch(*mine[0])  # one of them here: a single-tile request needs no other thread
        return [value.result() if isinstance(value, Future) else value for value in found.values()]

    def _fetch(self, key: str, coming: Future) -> None:
        try:
            data = self.read(key)
        except BaseException as error:  # noqa: BLE001 - handed to every reader through the future
            self._cache.settle((self.version, key), coming, None, error)
            return
        self.stats.fetched(len(data))
        self._cache.settle((self.version, key), coming, data, None)
