"""Header-only checks, done before a single pixel of an untrusted file is decoded.

The format is sniffed from the file's content (never its extension) and must
be on the allow-list; libvips' untrusted loaders are blocked outright; width x
height is checked against the limit from the header.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

import pyvips

from app.errors import CorruptImage, ImageTooLarge, UnsupportedFormat
from app.model import ImageFacts
from app.pipeline import jp2, pdf

_LOADER_NAME = re.compile(r"^([a-z0-9]+?)load(_source|_buffer)?$")  # what "vips-loader" says: jpegload, ...
_FORMAT_OF_LOADER = {
    "jpeg": "jpeg",
    "png": "png",
    "spng": "png",
    "tiff": "tiff",
    "webp": "webp",
    "heif": "heif",
    "gif": "gif",
    "nsgif": "gif",
    "jp2k": "jp2k",
}
_BITS = {
    "uchar": 8,
    "char": 8,
    "ushort": 16,
    "short": 16,
    "uint": 32,
    "int": 32,
    "float": 32,
    "complex": 64,
    "double": 64,
    "dpcomplex": 128,
}
FAIL_ON = "error"  # truncated or damaged data raises instead of yielding grey tiles
DECODED_HERE = ("jp2k", "pdf")  # formats the libvips wheel cannot load: decoded into memory by our own modules


@functools.cache
def harden_libvips() -> None:
    """Block loaders libvips marks untrusted (matlab, FITS, ImageMagick ...), once per process.

    Also switch off libvips' operation cache: it keys loads by file name, so a
    warm process re-converting a replaced file would otherwise get stale pixels.
    """
    pyvips.block_untrusted_set(True)
    pyvips.cache_set_max(0)


def sniff_format(path: Path) -> str | None:
    """The format ``path`` holds, judged from its bytes (for most, as libvips would load it); None if not an image."""
    with path.open("rb") as stream:
        start = stream.read(1024)
    if jp2.is_jpeg2000(start):
        return "jp2k"
    if pdf.is_pdf(start):
        return "pdf"
    try:  # the header only: libvips picks the loader by the bytes and reads no pixels
        loader = pyvips.Image.new_from_file(str(path), access="sequential").get("vips-loader")
    except pyvips.Error:
        return None
    match = _LOADER_NAME.match(loader)
    name = match.group(1) if match else loader
    return _FORMAT_OF_LOADER.get(name, name)


def open_image(
    path: Path,
    allowed_formats: tuple[str, ...],
    max_pixels: int,
    *,
    pdf_dpi: int = 300,
    max_pages: int = 1,
    decode: bool = True,
) -> tuple[pyvips.Image | None, ImageFacts]:
    """Check ``path`` from its header and return the image, oriented as a viewer shows it.

    JPEG 2000 and PDF (the first page, at ``pdf_dpi``) are decoded into memory here, unless ``decode`` is
    off (then their image is None, the facts come from the header alone, and ``decode_master`` decodes them
    later; other formats load lazily anyway). Raises an ``InputError`` subclass with a one-line reason for
    anything we will not convert.
    """
    fmt = checked_format(path, allowed_formats)
    if fmt == "jp2k":
        header = jp2.read_header(path, lambda width, height: _check_pixels(width, height, max_pixels))
        facts = _jp2_facts(path, header)
    elif fmt == "pdf":  # a document's pages are split first (``pages``); this is its first page
        width, height = pdf.first_page_size(path, pdf_dpi, max_pages, max_pixels)
        facts = ImageFacts("pdf", width, height, 3, 8, "srgb", 1, False, None, path.stat().st_size)
    else:
        header = _load(path, access="sequential")
        _check_pixels(header.width, header.height, max_pixels)
        orientation = _orientation(header)
        image = header if orientation == 1 else _load(path, access="random").autorot()
        return image, _facts(path, fmt, header, image, orientation)
    return (decode_master(path, fmt, max_pixels, pdf_dpi=pdf_dpi, max_pages=max_pages) if decode else None), facts


def decode_master(path: Path, fmt: str, max_pixels: int, *, pdf_dpi: int = 300, max_pages: int = 1) -> pyvips.Image:
    """Decode a master of a format in ``DECODED_HERE`` into memory, once ``open_image`` has checked its header."""
    if fmt == "jp2k":
        return jp2.decode(path)
    return pdf.render_first_page(path, pdf_dpi, max_pages, max_pixels)


def checked_format(path: Path, allowed_formats: tuple[str, ...]) -> str:
    """The file's format, if it is on the allow-list; else an ``UnsupportedFormat`` saying why not."""
    harden_libvips()
    if not path.is_file():
        raise UnsupportedFormat("no such file")
    fmt = sniff_format(path)
    if fmt is None:
        raise UnsupportedFormat("not an image format libvips recognises")
    if fmt not in allowed_formats:
        raise UnsupportedFormat(f"{fmt} images are not accepted (accepted: {', '.join(allowed_formats)})")
    return fmt


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} (MAX_PIXELS)"
        )


def _jp2_facts(path: Path, header: jp2.Header) -> ImageFacts:
    alpha = header.components in (2, 4)
    grey = header.components <= 2
    space = "cmyk" if header.enumerated_space == 12 else ("b-w" if grey else "srgb")
    return ImageFacts(
        "jp2k",
        header.width,
        header.height,
        header.components,
        header.bit_depth,
        space,
        1,
        alpha,
        parse_icc_description(header.icc_profile) if header.icc_profile else None,
        path.stat().st_size,
    )


def _load(path: Path, access: str) -> pyvips.Image:
    try:
        return pyvips.Image.new_from_file(str(path), access=access, fail_on=FAIL_ON)
    except pyvips.Error as error:
        raise CorruptImage(f"cannot read the image header: {vips_reason(error)}") from None


def vips_reason(error: pyvips.Error) -> str:
    """The most telling line of a libvips error, for a one-line message."""
    lines = [line.strip() for line in str(error.detail or error.message).splitlines() if line.strip()]
    return lines[-1] if lines else str(error.message)


def _orientation(image: pyvips.Image) -> int:
    if image.get_typeof("orientation") == 0:
        return 1
    value = image.get("orientation")
    return value if 1 <= value <= 8 else 1


def _facts(path: Path, fmt: str, header: pyvips.Image, image: pyvips.Image, orientation: int) -> ImageFacts:
    return ImageFacts(
        format=fmt,
        width=image.width,
        height=image.height,
        bands=header.bands,
        bit_depth=_BITS.get(header.format, 8),
        interpretation=str(header.interpretation),
        orientation=orientation,
        has_alpha=bool(header.hasalpha()),
        icc_description=icc_description(header),
        file_bytes=path.stat().st_size,
    )


def icc_description(image: pyvips.Image) -> str | None:
    """The profile's ``desc`` text (ICC v2 'desc' or v4 'mluc'), or None without a profile."""
    if image.get_typeof("icc-profile-data") == 0:
        return None
    return parse_icc_description(image.get("icc-profile-data"))


def parse_icc_description(profile: bytes) -> str | None:
    try:
        (count,) = struct.unpack_from(">I", profile, 128)
        for index in range(count):
            signature, offset, _size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
            if signature != b"desc":
                continue
            kind = profile[offset : offset + 4]
            if kind == b"desc":
                (length,) = struct.unpack_from(">I", profile, offset + 8)
                return profile[offset + 12 : offset + 12 + length].split(b"\0")[0].decode("latin-1") or None
            if kind == b"mluc":
                length, start = struct.unpack_from(">II", profile, offset + 20)
                return profile[offset + start : offset + start + length].decode("utf-16-be").rstrip("\0") or None
    except (struct.error, UnicodeDecodeError):
        pass
    return None
