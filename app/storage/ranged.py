"""A pyvips source over an S3 object: libvips seeks and reads, S3 answers with ranged GETs.

libtiff reads a tiled TIFF as a few small scattered reads: the chain of
directories, then the tiles a region touches. ``S3Source`` serves them from
aligned blocks of ``BLOCK_SIZE`` bytes, each fetched with one ranged GET and
kept in a small LRU shared by the process (keyed by the object's ETag, so a
replaced TIFF is never mixed with its predecessor). A 512-pixel tile of a
multi-gigapixel TIFF costs a few blocks, never a download of the file; in a
warm process the directories are already cached and a tile costs one or two
GETs.

The S3 calls themselves stay in ``app.storage.s3`` (``head``, ``read_range``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import pyvips

from app.errors import SourceGone, TilerError
from app.iiif.request import NotFound, Unavailable
from app.model import SourceRef
from app.storage.s3 import PreconditionFailed, S3Storage

# 64 KiB: a cold tile costs about as many GETs as with 256 KiB blocks (one per page directory, which libtiff walks
# on open, plus one or two for the tile) but a quarter of the bytes: 0.5 MB instead of 1.8 MB for a 512px tile of a
# 6000x4000 TIFF; warm, both cost one or two GETs.
BLOCK_SIZE = 64 * 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
_SEEK_SET, _SEEK_CUR, _SEEK_END = 0, 1, 2


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
        key = (self.ref.bucket, self.ref.key, self.ref.etag, index)
        block = self.cache.get(key)
        if block is not None:
            self.stats.cache_hits += 1
            return block
        start = index * BLOCK_SIZE
        block = self.storage.read_range(
            self.ref.bucket, self.ref.key, start, min(start + BLOCK_SIZE, self.ref.size), etag=self.ref.etag
        )
        self.stats.gets += 1
        self.stats.bytes_fetched += len(block)
        self.cache.put(key, block)
        return block


class RemoteTiff:
    """One version of a TIFF on S3, opened page by page; every source it opens counts into ``stats``."""

    def __init__(self, storage: S3Storage, ref: SourceRef, cache: BlockCache | None = None) -> None:
        self.storage, self.ref, self.cache = storage, ref, cache
        self.stats = ReadStats()
        self._sources: list[S3Source] = []

    @classmethod
    def locate(cls, storage: S3Storage, bucket: str, key: str, cache: BlockCache | None = None) -> RemoteTiff:
        """The object's current version (one HEAD); NotFound when there is none."""
        try:
            return cls(storage, storage.head(SourceRef(bucket, key)), cache)
        except SourceGone:
            raise NotFound("no such image") from None
        except TilerError as error:
            raise Unavailable(f"storage unavailable: {error}") from None

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
