"""Documents (PDF, multi-page TIFF): checked from their headers, split into one source per page, each an image."""

import json

import pytest
import pyvips

from app.errors import CorruptImage, ImageTooLarge, UnsupportedFormat
from app.pipeline import pdf
from app.pipeline.pages import inspect_document, split, tiff_pages
from tests.helpers import (
    ENCRYPTED_PDF,
    SCRIPTED_PDF,
    SHARED,
    handmade_pdf,
    photo,
    solid,
)


def multipage_tiff(path, sizes):
    """A TIFF with one page per (width, height), each a different colour (libvips wants equal pages: crop each)."""
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    pages = [solid(width, height, [40 * n, 200 - 40 * n, 90]) for n in range(len(sizes))]
    stacked = pyvips.Image.arrayjoin(pages, across=1).copy()
    stacked.set_type(pyvips.GValue.gint_type, "page-height", height)
    stacked.tiffsave(str(path))
    return path


PAGE_COLOURS = ([200, 40, 40], [40, 160, 60], [40, 60, 200])


def three_page_pdf(path):
    """Pages 200, 250 and 300 points wide, each a scan (a JPEG filling the page) of its own colour."""
    pdfium = pdf._pdfium()
    document = pdfium.PdfDocument.new()
    for width, colour in zip((200, 250, 300), PAGE_COLOURS, strict=True):
        scan = path.with_name(f"scan-{width}.jpg")
        solid(width, 300, colour).jpegsave(str(scan), Q=95)
        page = document.new_page(width, 300)
        image = pdfium.PdfImage.new(document)
        image.load_jpeg(str(scan))
        image.set_matrix(pdfium.PdfMatrix().scale(width, 300))
        page.insert_obj(image)
        page.gen_content()
    document.save(str(path))
    return path


def test_a_pdf_is_a_document_whose_pages_are_sized_at_pdf_dpi(tmp_path, settings):
    document = inspect_document(three_page_pdf(tmp_path / "book.pdf"), "pdf", settings.with_overrides(pdf_dpi=144))
    assert [(p.number, p.label, p.width, p.height) for p in document.pages] == [
        (1, "1", 400, 600),
        (2, "2", 500, 600),
        (3, "3", 600, 600),
    ]
    files = split(tmp_path / "book.pdf", document, tmp_path / "pages")
    assert [f.name for f in files] == ["p0001.pdf", "p0002.pdf", "p0003.pdf"]
    with pdf.opened(files[1], 1) as single:  # a page alone, not rendered yet
        assert len(single) == 1 and single.get_page_size(0) == (250, 300)


def test_a_multipage_tiff_is_a_document_but_a_pyramid_is_one_image(tmp_path, settings):
    document = inspect_document(multipage_tiff(tmp_path / "scan.tif", [(120, 80)] * 3), "tiff", settings)
    assert [(p.number, p.index, p.width, p.height) for p in document.pages] == [
        (1, 0, 120, 80),
        (2, 1, 120, 80),
        (3, 2, 120, 80),
    ]
    files = split(tmp_path / "scan.tif", document, tmp_path / "pages")
    second = pyvips.Image.new_from_file(str(files[1]))
    assert (second.width, second.height, second.get("n-pages")) == (120, 80, 1)
    assert second(5, 5) == [40, 160, 90]  # page 2's own pixels, losslessly
    pyramid = tmp_path / "pyramid.tif"
    photo(1500, 1000).tiffsave(str(pyramid), tile=True, pyramid=True)
    assert pyvips.Image.new_from_file(str(pyramid)).get("n-pages") > 1  # levels are directories ...
    assert len(tiff_pages(pyramid, 10)) == 1 and inspect_document(pyramid, "tiff", settings) is None  # ... not pages
    assert inspect_document(tmp_path / "scan.tif", "jpeg", settings) is None


@pytest.mark.parametrize(
    "kind,error,reason",
    [
        ("scripted", UnsupportedFormat, "carries JavaScript"),
        ("encrypted", UnsupportedFormat, "encrypted with a password"),
        ("many pages", ImageTooLarge, "has 10,000 pages, over the limit of 1,000 \\(MAX_PAGES\\)"),
        ("huge page", ImageTooLarge, "page 1 is 16667x25000 at 1200 dpi"),
        ("damaged", CorruptImage, "cannot be read"),
    ],
)
def test_hostile_pdfs_are_refused_from_their_headers(tmp_path, settings, kind, error, reason):
    path = tmp_path / f"{kind}.pdf"
    if kind == "many pages":
        document = pdf._pdfium().PdfDocument.new()
        for _ in range(10_000):
            document.new_page(100, 100)
        document.save(str(path))
    else:
        body = handmade_pdf(**{"scripted": SCRIPTED_PDF, "encrypted": ENCRYPTED_PDF}.get(kind, {}))
        path.write_bytes(body if kind != "damaged" else body[:40])
    if kind == "huge page":
        settings = settings.with_overrides(pdf_dpi=1200, max_pixels=10**8)
        path.write_bytes(handmade_pdf().replace(b"[0 0 200 300]", b"[0 0 1000 1500]"))
    with pytest.raises(error, match=reason):
        inspect_document(path, "pdf", settings)


def test_the_cli_converts_a_document_into_an_item_of_pages_with_a_valid_manifest(tmp_path, settings):
    import jsonschema

    from app.__main__ import main

    src = three_page_pdf(tmp_path / "ledger.pdf")
    assert (
        main(
            [
                "convert",
                str(src),
                "--tiles-dir",
                str(tmp_path / "t"),
                "--metadata-dir",
                str(tmp_path / "m"),
                "--base-url",
                "http://tiles.example.org",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "t" / "ledger" / "manifest.json").read_text())
    schema_path = SHARED / "iiif-presentation-schema" / "iiif_3_0.json"
    if schema_path.exists():
        schema = json.loads(schema_path.read_text())
        assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(manifest)) == []
    assert [(c["label"]["none"][0], c["width"]) for c in manifest["items"]] == [
        ("p. 1", 834),
        ("p. 2", 1042),
        ("p. 3", 1250),
    ]  # 300 dpi, in page order
    assert manifest["thumbnail"][0]["service"][0]["id"] == "http://tiles.example.org/ledger/p0001"
    for page, colour in zip(("p0001", "p0002", "p0003"), PAGE_COLOURS, strict=True):
        assert (tmp_path / "t" / "ledger" / page / "info.json").exists()
        small = pyvips.Image.new_from_file(str(tmp_path / "t" / f"ledger/{page}_files/8/0_0.jpg"))
        assert all(abs(a - b) <= 8 for a, b in zip(small(100, 100), colour, strict=True))  # the page's own scan
