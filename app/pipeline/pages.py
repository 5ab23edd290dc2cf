"""Documents: a PDF, or a TIFF of several full-resolution pages, becomes one item with one image per page.

Checked from headers alone (page count against MAX_PAGES, each page's size
against MAX_PIXELS), then split into one source file per page, in page
order; each page is then converted like any image (``convert``), so big
pages go to AWS Batch and pages convert in parallel. A TIFF's reduced-
resolution directories (NewSubfileType bit 0: pyramid levels, scanner
thumbnails) are not pages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pyvips

from app.errors import CorruptImage, ImageTooLarge
from app.pipeline import pdf
from app.pipeline.inspect import FAIL_ON, vips_reason
from config import Settings

_REDUCED_RESOLUTION = 1  # NewSubfileType bit 0
_WIDTH, _HEIGHT, _SUBFILE_TYPE = 256, 257, 254


@dataclass(frozen=True)
class Page:
    number: int  # 1-based, in document order
    label: str  # what a reader calls it: the PDF's page label ("iv", "12"), else the number
    width: int
    height: int
    index: int  # where the page is in the file: the PDF page index, or the TIFF directory libvips loads


@dataclass(frozen=True)
class Document:
    format: str
    pages: tuple[Page, ...]
    title: str | None = None
    summary: str | None = None
    creator: str | None = None


def inspect_document(path: Path, fmt: str, settings: Settings) -> Document | None:
    """The document ``path`` holds, checked from its headers; None for a single image."""
    if fmt == "pdf":
        with pdf.opened(path, settings.max_pages) as document:
            info = pdf.describe(document)
            found = [
                Page(n, label, w, h, n - 1)
                for n, (label, w, h) in enumerate(pdf.pages(document, settings.pdf_dpi, settings.max_pixels), start=1)
            ]
        return Document("pdf", tuple(found), info.get("Title"), info.get("Subject"), info.get("Author"))
    if fmt != "tiff":
        return None
    directories = tiff_pages(path, settings.max_pages)
    if len(directories) < 2:
        return None
    for number, (_, width, height) in enumerate(directories, start=1):
        if width * height > settings.max_pixels:
            raise ImageTooLarge(
                f"page {number} is {width}x{height}, {width * height:,} pixels, over the limit of "
                f"{settings.max_pixels:,} (MAX_PIXELS)"
            )
    return Document("tiff", tuple(Page(n, str(n), w, h, index) for n, (index, w, h) in enumerate(directories, 1)))


def split(path: Path, document: Document, folder: Path) -> list[Path]:
    """One source file per page, in page order: one-page PDFs (nothing rendered yet), or lossless TIFFs."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / f"p{page.number:04}.{'pdf' if document.format == 'pdf' else 'tif'}" for page in document.pages]
    if document.format == "pdf":
        with pdf.opened(path, len(document.pages)) as opened:
            for page, target in zip(document.pages, targets, strict=True):
                pdf.save_page(opened, page.index, target)
        return targets
    for page, target in zip(document.pages, targets, strict=True):
        try:
            image = pyvips.Image.new_from_file(str(path), page=page.index, access="sequential", fail_on=FAIL_ON)
            image.tiffsave(str(target), compression="deflate", level=1, predictor="horizontal", bigtiff=True)
        except pyvips.Error as error:
            raise CorruptImage(f"page {page.number} cannot be read: {vips_reason(error)}") from None
    return targets


def tiff_pages(path: Path, max_pages: int) -> list[tuple[int, int, int]]:
    """(directory index, width, height) of every full-resolution page, from the directory chain alone."""
    with path.open("rb") as stream:
        header = stream.read(16)
        order = {b"II": "<", b"MM": ">"}.get(header[:2])
        if order is None or len(header) < 8:
            raise CorruptImage("the TIFF header is damaged")
        big = struct.unpack(order + "H", header[2:4])[0] == 43
        offset = struct.unpack(order + ("Q" if big else "I"), header[8:16] if big else header[4:8])[0]
        found, seen = [], set()
        while offset and len(seen) <= 4 * max_pages + 16:
            if offset in seen:
                raise CorruptImage("the TIFF's directories form a loop")
            seen.add(offset)
            tags, offset = _directory(stream, order, big, offset)
            if not tags.get(_SUBFILE_TYPE, 0) & _REDUCED_RESOLUTION:
                found.append((len(seen) - 1, tags.get(_WIDTH, 0), tags.get(_HEIGHT, 0)))
            if len(found) > max_pages:
                raise ImageTooLarge(f"the TIFF has more than {max_pages:,} pages, the limit (MAX_PAGES)")
    return found


def _directory(stream, order: str, big: bool, offset: int) -> tuple[dict[int, int], int]:
    """The directory's small numeric tags and the offset of the next directory."""
    count_format, entry_size, value_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    stream.seek(offset)
    raw_count = stream.read(struct.calcsize(count_format))
    tags = {}
    try:
        (count,) = struct.unpack(order + count_format, raw_count)
        entries = stream.read(count * entry_size)
        (following,) = struct.unpack(order + value_format, stream.read(struct.calcsize(value_format)))
        for start in range(0, count * entry_size, entry_size):
            tag, kind = struct.unpack_from(order + "HH", entries, start)
            if tag in (_WIDTH, _HEIGHT, _SUBFILE_TYPE):
                value_at = start + (12 if big else 8)
                tags[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), entries, value_at)[0]
    except struct.error:
        raise CorruptImage("the TIFF is truncated (it ends inside a directory)") from None
    return tags, following
