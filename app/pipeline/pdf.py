"""PDF documents through pypdfium2 (PDFium): checked before anything is rendered, one page rendered at a time.

A PDF is refused, with its reason, when it is encrypted (a password, or
usage restrictions we would bypass by publishing its pages), carries
JavaScript (PDFium here has no script engine, but a scanned master has no
business holding scripts), has more pages than MAX_PAGES, or a page that
would be over MAX_PIXELS at PDF_DPI. PDFium is not thread-safe, and the
demo runs jobs on threads: every call into it holds one lock.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pyvips

from app.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

POINTS_PER_INCH = 72
_lock = threading.RLock()


def is_pdf(start: bytes) -> bool:
    return b"%PDF-" in start[:1024]


@functools.cache
def _pdfium():
    """pypdfium2, imported on first use (image conversions never pay for it)."""
    import pypdfium2
    import pypdfium2.raw

    return pypdfium2


@contextlib.contextmanager
def opened(path: Path, max_pages: int) -> Iterator[object]:
    """The document, checked; the lock is held while it is open."""
    pdfium = _pdfium()
    with _lock:
        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as error:
            if "password" in str(error).lower():
                raise UnsupportedFormat("the PDF is encrypted with a password: decrypt it first") from None
            raise CorruptImage(f"the PDF cannot be read: {error}") from None
        try:
            _check(pdfium, document, max_pages)
            yield document
        finally:
            document.close()


def _check(pdfium, document, max_pages: int) -> None:
    if pdfium.raw.FPDF_GetSecurityHandlerRevision(document) != -1:
        raise UnsupportedFormat("the PDF is encrypted (usage restrictions): publish a decrypted copy")
    scripts = pdfium.raw.FPDFDoc_GetJavaScriptActionCount(document)
    if scripts:
        raise UnsupportedFormat(
            f"the PDF carries JavaScript ({scripts} script{'s' if scripts > 1 else ''}); "
            "PDFs with scripts are not accepted"
        )
    if len(document) == 0:
        raise CorruptImage("the PDF has no pages")
    if len(document) > max_pages:
        raise ImageTooLarge(f"the PDF has {len(document):,} pages, over the limit of {max_pages:,} (MAX_PAGES)")


def pages(document, dpi: int, max_pixels: int) -> list[tuple[str, int, int]]:
    """(label, width, height) of every page: the PDF's own page label ("iv"), else its number; its rendered size."""
    found = []
    for index in range(len(document)):
        width, height = _pixels(document.get_page_size(index), dpi)
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"page {index + 1} is {width}x{height} at {dpi} dpi, {width * height:,} pixels, "
                f"over the limit of {max_pixels:,} (MAX_PIXELS)"
            )
        found.append((document.get_page_label(index) or str(index + 1), width, height))
    return found


def describe(document) -> dict[str, str]:
    """The document information dictionary's non-empty Title, Subject and Author."""
    info = document.get_metadata_dict()
    return {key: info[key].strip() for key in ("Title", "Subject", "Author") if (info.get(key) or "").strip()}


def save_page(document, index: int, target: Path) -> None:
    """Page ``index`` alone, as a one-page PDF (its fonts and images come along); no pixels are rendered."""
    single = _pdfium().PdfDocument.new()
    try:
        single.import_pages(document, [index])
        single.save(str(target))
    finally:
        single.close()


def first_page_size(path: Path, dpi: int, max_pages: int, max_pixels: int) -> tuple[int, int]:
    """The first page's size at ``dpi``, from the document's page tree (nothing rendered)."""
    with opened(path, max_pages) as document:
        _, width, height = pages(document, dpi, max_pixels)[0]
    return width, height


def render_first_page(path: Path, dpi: int, max_pages: int, max_pixels: int) -> pyvips.Image:
    """The first page at ``dpi``, as an 8-bit sRGB libvips image in memory (transparency on white)."""
    with opened(path, max_pages) as document:
        _, width, height = pages(document, dpi, max_pixels)[0]
        page = document[0]
        try:
            bitmap = page.render(scale=_scale(dpi), prefer_bgrx=True, rev_byteorder=True, may_draw_forms=False)
            rgbx = pyvips.Image.new_from_memory(bytes(bitmap.buffer), bitmap.width, bitmap.height, 4, "uchar")
        finally:
            page.close()
    if (rgbx.width, rgbx.height) != (width, height):
        raise CorruptImage(f"the PDF page rendered at {rgbx.width}x{rgbx.height}, not its declared {width}x{height}")
    return rgbx.extract_band(0, n=3).copy(interpretation="srgb")


def _scale(dpi: int) -> float:
    return dpi / POINTS_PER_INCH


def _pixels(points: tuple[float, float], dpi: int) -> tuple[int, int]:
    return tuple(max(1, math.ceil(side * _scale(dpi))) for side in points)  # exactly as pypdfium2 sizes a render
