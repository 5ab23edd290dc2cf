"""JPEG 2000 (.jp2, .j2k, single-codestream .jpx): header-first checks, then one decode through imagecodecs.

The pinned libvips wheel has no JPEG 2000 loader. imagecodecs bundles
OpenJPEG (built for speed: it decodes as fast as OpenJPEG's own command-line
tool, where the copy in Pillow's wheel takes 1.7 times as long), and converts
sYCC to RGB. Before a pixel is decoded, the boxes
and the codestream's main header are read here: size, components, bit depth,
the ``colr`` box (enumerated colour space or ICC profile), and every
tile-part's length is walked to the end-of-codestream marker, so a truncated
or damaged file is refused up front (OpenJPEG itself decodes a truncated
codestream to a blurred image without complaint).

Memory: OpenJPEG holds 4 bytes per sample of the whole image while decoding,
then the decoded samples are held once more as bytes: an 8-bit RGB codestream
peaks at about 20 MB per megapixel of the process (``DECODE_MB_PER_MEGAPIXEL``,
measured). The decoded pixels become one in-memory libvips image that the
normal tiling path reads: there is no second tiler.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyvips

from app.errors import CorruptImage, UnsupportedFormat

JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
CODESTREAM_START = b"\xff\x4f\xff\x51"  # SOC then SIZ: a raw .j2k codestream
DECODE_MB_PER_MEGAPIXEL = 20  # peak RSS of an untiled 8-bit RGB decode, measured (README, "Formats")
DECODE_MEGAPIXELS_PER_SECOND = 2  # a lossless decode on 2 vCPUs, measured; lossy ones are about 3 times faster
_SOT, _EOC = 0xFF90, 0xFFD9
_FORMATS = {"u1": "uchar", "i1": "char", "u2": "ushort", "i2": "short", "u4": "uint", "i4": "int"}


@dataclass(frozen=True)
class Header:
    """What the boxes and the codestream's main header say, before any decoding."""

    width: int
    height: int
    components: int
    bit_depth: int
    icc_profile: bytes | None
    enumerated_space: int | None


def is_jpeg2000(start: bytes) -> bool:
    return start.startswith(JP2_SIGNATURE) or start.startswith(CODESTREAM_START)


def read_header(path: Path, check_size: Callable[[int, int], None]) -> Header:
    """Parse and check the file's structure; raise ``CorruptImage`` for truncated or damaged files.

    ``check_size(width, height)`` runs as soon as the size is known, before the tile-parts are walked.
    """
    with path.open("rb") as stream:
        reader = _Reader(stream, path.stat().st_size)
        try:
            if reader.read(4, at=0) == CODESTREAM_START[:4] and reader.read(2, at=2) == b"\xff\x51":
                return _codestream(reader, 0, reader.size, None, None, check_size)
            return _boxes(reader, check_size)
        except (struct.error, EOFError):
            raise CorruptImage("the JPEG 2000 file is truncated (it ends inside a header)") from None


def decode(path: Path) -> pyvips.Image:
    """Decode every pixel at full resolution, on all cores, into an in-memory libvips image.

    imagecodecs applies the ``colr`` box's ICC profile itself (to sRGB), so the image carries none.
    """
    imagecodecs = _imagecodecs()
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            pixels = imagecodecs.jpeg2k_decode(data, numthreads=os.cpu_count() or 1)
        except (imagecodecs.Jpeg2kError, ValueError, MemoryError) as error:
            raise CorruptImage(f"the JPEG 2000 data cannot be decoded: {error}") from None
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    fmt = _FORMATS.get(pixels.dtype.str.lstrip("<>|="))
    if fmt is None:
        raise UnsupportedFormat(f"JPEG 2000 samples of type {pixels.dtype} are not supported")
    image = pyvips.Image.new_from_memory(pixels.data, pixels.shape[1], pixels.shape[0], bands, fmt)
    return image.copy(interpretation=_interpretation(bands, fmt))


@functools.cache
def _imagecodecs():
    """imagecodecs, imported on first use: the web app imports the pipeline but never decodes."""
    import imagecodecs

    return imagecodecs


def _interpretation(bands: int, fmt: str) -> str:
    wide = fmt in ("ushort", "short")
    if bands <= 2:
        return "grey16" if wide else "b-w"
    return "rgb16" if wide else "srgb"


def _boxes(reader: _Reader, check_size: Callable[[int, int], None]) -> Header:
    """Walk the JP2/JPX boxes: the jp2h header box and exactly one contiguous codestream."""
    position, jp2h, codestreams = 0, None, []
    while position < reader.size:
        length, kind, body = _box(reader, position, reader.size)
        if kind == b"jp2h":
            jp2h = _header_box(reader, body, position + length)
        elif kind == b"jp2c":
            codestreams.append((body, position + length))
        elif kind in (b"ftbl", b"jpch"):
            raise UnsupportedFormat("JPX files with fragmented or several codestreams are not accepted")
        position += length
    if not codestreams:
        raise CorruptImage("the JPEG 2000 file has no codestream (truncated?)")
    if len(codestreams) > 1:
        raise UnsupportedFormat(f"the JPX file holds {len(codestreams)} codestreams; only one is accepted")
    icc, space = jp2h or (None, None)
    return _codestream(reader, *codestreams[0], icc, space, check_size)


def _box(reader: _Reader, position: int, end: int) -> tuple[int, bytes, int]:
    """(length, type, offset of the box's contents) of the box at ``position``."""
    length, kind = struct.unpack(">I4s", reader.read(8, at=position))
    header = 8
    if length == 1:
        (length,) = struct.unpack(">Q", reader.read(8, at=position + 8))
        header = 16
    elif length == 0:  # to the end of the file
        length = end - position
    if length < header or position + length > end:
        raise CorruptImage(f"the JPEG 2000 box {kind!r} runs past the end of the file (truncated?)")
    return length, kind, position + header


def _header_box(reader: _Reader, position: int, end: int) -> tuple[bytes | None, int | None]:
    """The colour specification of the jp2h box: (ICC profile, enumerated colour space)."""
    while position < end:
        length, kind, body = _box(reader, position, end)
        if kind == b"colr":
            method = reader.read(1, at=body)[0]
            if method == 1:
                return None, struct.unpack(">I", reader.read(4, at=body + 3))[0]
            if method in (2, 3):
                return reader.read(position + length - body - 3, at=body + 3), None
        position += length
    return None, None


def _codestream(
    reader: _Reader, start: int, end: int, icc: bytes | None, space: int | None, check_size: Callable[[int, int], None]
) -> Header:
    if reader.read(4, at=start) != CODESTREAM_START:
        raise CorruptImage("the JPEG 2000 codestream does not start with SOC and SIZ markers")
    (length,) = struct.unpack(">H", reader.read(2, at=start + 4))
    siz = reader.read(length - 2, at=start + 6)
    x, y, x0, y0, tile_w, tile_h, tile_x0, tile_y0, components = struct.unpack_from(">2x8IH", siz)
    if not (x > x0 and y > y0 and tile_w and tile_h and 1 <= components <= 16384 and len(siz) >= 36 + 3 * components):
        raise CorruptImage("the JPEG 2000 size header (SIZ) is damaged")
    check_size(x - x0, y - y0)
    depth = max((siz[36 + 3 * c] & 0x7F) + 1 for c in range(components))
    _walk(reader, start + 6 + length - 2, end, -(-(x - tile_x0) // tile_w) * -(-(y - tile_y0) // tile_h))
    return Header(x - x0, y - y0, components, depth, icc, space)


def _walk(reader: _Reader, position: int, end: int, tiles: int) -> None:
    """Check the main header's markers and that every one of ``tiles`` has its tile-parts, up to EOC."""
    while True:
        marker, length = struct.unpack(">HH", reader.read(4, at=position))
        if marker == _SOT:
            break
        if marker < 0xFF30:
            raise CorruptImage(f"the JPEG 2000 main header is damaged (marker {marker:#06x})")
        position += 2 + length
    seen: set[int] = set()
    while True:
        marker = struct.unpack(">H", reader.read(2, at=position))[0]
        if marker == _EOC:
            break
        if marker != _SOT:
            raise CorruptImage(f"the JPEG 2000 codestream is damaged (marker {marker:#06x} where a tile-part starts)")
        tile, part_length = struct.unpack(">HI", reader.read(6, at=position + 4))
        if part_length == 0:  # the last tile-part runs to EOC
            part_length = end - 2 - position
        if part_length < 14 or position + part_length > end or tile >= tiles:
            raise CorruptImage("the JPEG 2000 codestream is truncated (a tile-part runs past the end)")
        seen.add(tile)
        position += part_length
    if len(seen) != tiles:
        raise CorruptImage(f"the JPEG 2000 codestream is truncated: {tiles - len(seen)} of {tiles} tiles are missing")


class _Reader:
    """Random reads of a file's bytes; EOFError past the end (struct errors tell the rest)."""

    def __init__(self, stream, size: int) -> None:
        self.stream, self.size = stream, size

    def read(self, count: int, at: int) -> bytes:
        if at < 0 or at + count > self.size:
            raise EOFError
        self.stream.seek(at)
        return self.stream.read(count)
