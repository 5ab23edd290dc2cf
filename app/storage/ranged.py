"""A pyvips source over an S3 object: libvips seeks and reads, S3 answers with ranged GETs.

libtiff reads a tiled TIFF as a few small scattered reads: the chain of
directories, then the tiles a region touches. ``S3Source`` serves them from
aligned blocks of ``BLOCK_SIZE`` bytes, each fetched with one ranged GET and
kept in a small LRU shared by the process (keyed by the object's ETag, so a
replaced TIFF is never mixed with its predecessor). A 512-pixel tile of a
multi-gigapixel TIFF costs a few blocks, never a download of the file; in a
warm process the directories are already cached and a tile costs one or two
GETs.

A cold open walks the chain of directories one ranged GET at a time, and
libvips writes each page's directory after its pixels, so they lie scattered
through the file: about one round trip per page. So the publisher stores
where they are (``directory_ranges``, the header, every directory and its
out-of-line tag values) in the serving TIFF's user metadata, and a cold open
that finds it there (the HEAD it makes anyway) fetches those blocks in one
parallel round before libtiff starts; a TIFF without it is read as before.
One read across several blocks (libtiff reads a whole tile at once) fetches
its missing blocks in one GET, not one round trip each.

The S3 calls themselves stay in ``app.storage.s3`` (``head_with_metadata``, ``read_range``).
"""

from __future__ import annotations

import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyvips

from app.errors import SourceGone, TilerError
from app.iiif import serving
from app.iiif.request import NotFound, Unavailable
from app.model import SourceRef
from app.storage.s3 import PreconditionFailed, S3Storage

# 64 KiB: a cold tile costs about as many GETs as with 256 KiB blocks (one per page directory, which libtiff walks
# on open, plus one or two for the tile) but a quarter of the bytes: 0.5 MB instead of 1.8 MB for a 512px tile of a
# 6000x4000 TIFF; warm, both cost one or two GETs.
BLOCK_SIZE = 64 * 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
_SEEK_SET, _SEEK_CUR, _SEEK_END = 0, 1, 2
DIRECTORY_METADATA = "tiff-directory"  # the user metadata (x-amz-meta-tiff-directory) naming the directory ranges
MAX_METADATA_CHARS = 1800  # S3 allows 2 KB of user metadata in all
MAX_PREFETCH_BLOCKS = 64  # 4 MiB: a hint never turns a cold open into a download
MAX_SPAN_BLOCKS = 32  # one read across blocks fetches at most 2 MiB in one GET
PREFETCH_WORKERS = 16
MAX_DIRECTORIES = 64
_RANGES = re.compile(r"[0-9]{1,15}-[0-9]{1,15}(,[0-9]{1,15}-[0-9]{1,15}){0,200}")
# libtiff reads the start of a JPEG-compressed directory's first tile (2 KiB) to learn its real subsampling
_DATA_OFFSETS = (273, 324)  # StripOffsets, TileOffsets
_OFFSET_FORMATS = {4: "I", 16: "Q"}  # LONG, LONG8
_FIRST_TILE_PEEK = 2048
_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


class BlockCache:
    """A thread-safe LRU of blocks, bounded by their total bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key: tuple, block: bytes) -> None:
        with self._lock:
            if key in self._blocks:
                return
            self._blocks[key] = block
            self._bytes += len(block)
            while self._bytes > self.capacity and self._blocks:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._bytes = 0


BLOCKS = BlockCache(DEFAULT_CACHE_BYTES)  # one per process: warm Lambda invocations share it


@dataclass
class ReadStats:
    """What reading cost: GETs made and bytes fetched from S3, bytes handed to libvips, blocks found cached."""

    gets: int = 0
    bytes_fetched: int = 0
    bytes_served: int = 0
    cache_hits: int = 0


class S3Source(pyvips.SourceCustom):
    """One open stream over one version of an S3 object; a failed read leaves its cause in ``error``."""

    def __init__(
        self, storage: S3Storage, ref: SourceRef, stats: ReadStats | None = None, cache: BlockCache | None = None
    ) -> None:
        super().__init__()
        self.storage, self.ref = storage, ref
        self.stats = stats or ReadStats()
        self.cache = cache or BLOCKS
        self.position = 0
        self.error: BaseException | None = None
        # connect at buffer level (not on_read) so a failure can answer -1, which libvips reports as a read error
        self.signal_connect("read", self._read_into)
        self.signal_connect("seek", self._seek)

    def _read_into(self, buffer) -> int:
        try:
            if self.position >= self.ref.size:
                return 0
            index, offset = divmod(self.position, BLOCK_SIZE)
            last = min((self.position + len(buffer) - 1) // BLOCK_SIZE, (self.ref.size - 1) // BLOCK_SIZE)
            if last > index:  # a read across blocks (a whole tile): its missing blocks in one GET, not one each
                self.fetch_missing(range(index, min(last, index + MAX_SPAN_BLOCKS - 1) + 1))
            chunk = self._block(index)[offset : offset + len(buffer)]
            buffer[: len(chunk)] = chunk
            self.position += len(chunk)
            self.stats.bytes_served += len(chunk)
            return len(chunk)
        except Exception as error:  # noqa: BLE001 - handed back to the caller through self.error
            self.error = error
            return -1

    def _seek(self, offset: int, whence: int) -> int:
        base = {_SEEK_SET: 0, _SEEK_CUR: self.position, _SEEK_END: self.ref.size}.get(whence)
        if base is None or base + offset < 0:
            return -1
        self.position = base + offset
        return self.position

    def _block(self, index: int) -> bytes:
        block = self.cache.get(self._key(index))
        if block is not None:
            self.stats.cache_hits += 1
            return block
        return self._fetch(index, index)[0]

    def fetch_missing(self, indexes: range) -> None:
        """Fetch the blocks of ``indexes`` the cache lacks, from the first missing to the last, in one GET."""
        missing = [i for i in indexes if self.cache.get(self._key(i)) is None]
        if missing:
            self._fetch(missing[0], missing[-1])

    def _fetch(self, first: int, last: int) -> list[bytes]:
        """Blocks ``first`` to ``last`` in one ranged GET, each cached."""
        start = first * BLOCK_SIZE
        data = self.storage.read_range(
            self.ref.bucket, self.ref.key, start, min((last + 1) * BLOCK_SIZE, self.ref.size), etag=self.ref.etag
        )
        self.stats.gets += 1
        self.stats.bytes_fetched += len(data)
        blocks = [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
        for index, block in enumerate(blocks, first):
            self.cache.put(self._key(index), block)
        return blocks

    def _key(self, index: int) -> tuple:
        return (self.ref.bucket, self.ref.key, self.ref.etag, index)


class RemoteTiff:
    """One version of a TIFF on S3, opened page by page; every source it opens counts into ``stats``."""

    def __init__(self, storage: S3Storage, ref: SourceRef, cache: BlockCache | None = None) -> None:
        self.storage, self.ref, self.cache = storage, ref, cache
        self.stats = ReadStats()
        self._sources: list[S3Source] = []

    @classmethod
    def locate(cls, storage: S3Storage, bucket: str, key: str, cache: BlockCache | None = None) -> RemoteTiff:
        """The object's current version (one HEAD), its directories' blocks fetched if its metadata names them
        and they are not cached yet; NotFound when there is none."""
        try:
            ref, metadata = storage.head_with_metadata(SourceRef(bucket, key))
            tiff = cls(storage, ref, cache)
            tiff.prefetch(parse_ranges(metadata.get(DIRECTORY_METADATA, ""), ref.size or 0))
            return tiff
        except SourceGone:
            raise NotFound("no such image") from None
        except TilerError as error:
            raise Unavailable(f"storage unavailable: {error}") from None

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch the blocks holding ``ranges`` (and the header's) that the cache lacks, all at once."""
        if not ranges:
            return
        wanted = {0}
        for start, end in ranges:
            wanted.update(range(start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1))
        source = S3Source(self.storage, self.ref, self.stats, self.cache)
        missing = sorted(i for i in wanted if source.cache.get(source._key(i)) is None)[:MAX_PREFETCH_BLOCKS]
        runs: list[range] = []  # consecutive blocks: one GET each
        for index in missing:
            if runs and index == runs[-1].stop:
                runs[-1] = range(runs[-1].start, index + 1)
            else:
                runs.append(range(index, index + 1))
        if len(runs) > 1:
            with ThreadPoolExecutor(min(PREFETCH_WORKERS, len(runs)), thread_name_prefix="prefetch") as pool:
                list(pool.map(source.fetch_missing, runs))
        elif runs:
            source.fetch_missing(runs[0])

    def open(self, page: int) -> pyvips.Image:
        """Page ``page`` of the TIFF, lazily: pixels are read only when rendered."""
        source = S3Source(self.storage, self.ref, self.stats, self.cache)
        self._sources.append(source)
        return pyvips.Image.tiffload_source(source, page=page, fail_on="error")

    def raise_read_error(self) -> None:
        """If a read failed in S3 (rather than in libvips), raise it as the HTTP error it deserves."""
        for source in self._sources:
            if isinstance(source.error, SourceGone):
                raise NotFound("no such image") from None
            if isinstance(source.error, PreconditionFailed):
                raise Unavailable("the image changed while it was read; retry") from None
            if source.error is not None:
                raise Unavailable(f"storage unavailable: {source.error}") from None


# Where a TIFF's directories are: measured by the publisher, read back by a cold open -----------------------------
def directory_ranges(read: Callable[[int, int], bytes]) -> list[tuple[int, int]]:
    """(start, end) byte ranges of a TIFF's header, its directories, their out-of-line tag values (tile offsets
    and byte counts, JPEG tables) and the start of each directory's first tile: what libtiff reads to open every
    page. ``read(offset, length)``."""
    header = read(0, 16)
    order = {b"II": "<", b"MM": ">"}.get(header[:2])
    if order is None or len(header) < 8:
        return []
    big = struct.unpack(order + "H", header[2:4])[0] == 43
    count_format, entry_size, value_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    entry_format = order + ("HHQQ" if big else "HHII")
    inline = 8 if big else 4
    found = [(0, 16 if big else 8)]
    offset = struct.unpack(order + ("Q" if big else "I"), header[8:16] if big else header[4:8])[0]
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < MAX_DIRECTORIES:
        seen.add(offset)
        count_size = struct.calcsize(count_format)
        (entries,) = struct.unpack(order + count_format, read(offset, count_size))
        table_size = entries * entry_size
        table = read(offset + count_size, table_size + struct.calcsize(value_format))
        found.append((offset, offset + count_size + len(table)))
        for index in range(entries):
            tag, kind, count, value = struct.unpack_from(entry_format, table, index * entry_size)
            length = count * _TYPE_BYTES.get(kind, 1)
            if length > inline:
                found.append((value, value + length))
            if tag in _DATA_OFFSETS and count and kind in _OFFSET_FORMATS:  # the first tile's JPEG header too
                first = (
                    value
                    if length <= inline
                    else struct.unpack(order + _OFFSET_FORMATS[kind], read(value, 8)[: _TYPE_BYTES[kind]])[0]
                )
                found.append((first, first + _FIRST_TILE_PEEK))
        (offset,) = struct.unpack_from(order + value_format, table, table_size)
    return _merged(found)


def upload_headers(path: Path, key: str) -> dict[str, str]:
    """The headers to publish ``path`` at ``key`` with: the directory ranges for a serving TIFF, else none."""
    return {f"x-amz-meta-{name}": value for name, value in directory_metadata(path, key).items()}


def directory_metadata(path: Path, key: str) -> dict[str, str]:
    """The user metadata to publish the serving TIFF at ``key`` with (nothing for any other file)."""
    if not (key.startswith(serving.PREFIX) and key.endswith(".tif")):
        return {}
    with path.open("rb") as file:

        def read(offset: int, length: int) -> bytes:
            file.seek(offset)
            return file.read(length)

        ranges = directory_ranges(read)
    text = ""
    for start, end in ranges:
        item = f"{start}-{end}"
        if len(text) + len(item) + 1 > MAX_METADATA_CHARS:
            break
        text = f"{text},{item}" if text else item
    return {DIRECTORY_METADATA: text} if text else {}


def parse_ranges(text: str, size: int) -> list[tuple[int, int]]:
    """The ranges of ``directory_metadata`` back, inside an object of ``size`` bytes; [] for anything else."""
    if not _RANGES.fullmatch(text):
        return []
    ranges = [tuple(int(n) for n in item.split("-")) for item in text.split(",")]
    return [(start, end) for start, end in ranges if 0 <= start < end <= size]


def _merged(ranges: list[tuple[int, int]], gap: int = 4096) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
