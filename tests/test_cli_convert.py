"""The CLI's batch: one image tiles while the one before writes its sizes; results land in the files' order."""

import json
import sys
import threading

import pytest
import pyvips

import app.pipeline as pipeline
from app import cli_convert
from app.cli_convert import convert_files
from app.cli_progress import ConversionProgress
from app.storage.local import LocalStorage
from tests.helpers import jpeg2000, photo, solid

WAIT = 30  # seconds: only a broken overlap ever waits this long


def _expect_overlap(monkeypatch, earlier, later):
    """``earlier`` may finish its sizes only once ``later`` is tiling (else the test fails after WAIT seconds);
    returns how many tiled at once, sampled at each tiling's start."""
    tiling, most = [], []
    later_tiling = threading.Event()
    real_tile, real_sizes = pipeline.write_deep_zoom, pipeline.write_sizes

    def tile(image, root, image_id, *args):
        tiling.append(image_id)
        most.append(len(tiling))
        if image_id == later:
            later_tiling.set()
        try:
            return real_tile(image, root, image_id, *args)
        finally:
            tiling.remove(image_id)

    def sizes(root, image_id, *args):
        if image_id == earlier:
            assert later_tiling.wait(WAIT), f"{later} did not tile while {earlier} wrote its sizes"
        return real_sizes(root, image_id, *args)

    monkeypatch.setattr(pipeline, "write_deep_zoom", tile)
    monkeypatch.setattr(pipeline, "write_sizes", sizes)
    return most


def _record_tiling(monkeypatch):
    """The ids of the images tiled, in the order their tiling started."""
    tiled = []
    real_tile = pipeline.write_deep_zoom

    def tile(image, root, image_id, *args):
        tiled.append(image_id)
        return real_tile(image, root, image_id, *args)

    monkeypatch.setattr(pipeline, "write_deep_zoom", tile)
    return tiled


def _files(tmp_path, count):
    paths = []
    for index in range(count):
        path = tmp_path / "in" / f"page-{index}.jpg"
        path.parent.mkdir(exist_ok=True)
        photo(900, 700).jpegsave(str(path))
        paths.append(path)
    return paths


def test_the_next_image_tiles_while_the_one_before_writes_its_sizes(tmp_path, settings, monkeypatch):
    """Deterministic: image 0 may finish its sizes only once image 1 is tiling; never two tiling at once."""
    most = _expect_overlap(monkeypatch, earlier="page-0", later="page-1")
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with ConversionProgress(3) as progress:
        failures = convert_files(_files(tmp_path, 3), storage, settings, None, progress)

    assert failures == 0 and max(most) == 1
    for index in range(3):
        assert (tmp_path / "tiles" / f"page-{index}" / "info.json").is_file()
        assert (tmp_path / "tiles" / f"page-{index}" / "full" / "max" / "0" / "default.jpg").is_file()
    assert not [p for p in (tmp_path / "tiles").iterdir() if p.name.startswith(".staging")]


def test_files_of_one_id_publish_in_the_order_given_and_failures_are_told_in_turn(tmp_path, settings, capsys):
    """Two files named alike (one id) and a damaged one between them: the later file's pixels are published,
    whichever conversion finished first, and each file is announced in the order given."""
    red, blue = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"
    for path, colour in ((red, [200, 30, 30]), (blue, [30, 30, 200])):
        path.parent.mkdir()
        solid(600, 400, colour).jpegsave(str(path))
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(red.read_bytes()[:2000])
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with ConversionProgress(3) as progress:
        failures = convert_files([red, damaged, blue], storage, settings, None, progress)

    assert failures == 1
    published = pyvips.Image.new_from_file(str(tmp_path / "tiles" / "x" / "full" / "max" / "0" / "default.jpg"))
    assert published(300, 200)[2] > 150 and published(300, 200)[0] < 80  # blue, the later file
    err = capsys.readouterr().err
    assert err.index("[1/3] x.jpg") < err.index("[2/3] damaged.jpg") < err.index("[3/3] x.jpg")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {damaged}: rejected: the pixel data is damaged")


def test_turns_go_in_the_order_given_even_when_a_later_header_is_checked_first(tmp_path, settings, monkeypatch):
    """Headers are checked before the turn, two at once: file 0's check ends only after file 1's, yet file 0
    still tiles (and is announced) first."""
    files = _files(tmp_path, 2)
    later_checked, tiled = threading.Event(), _record_tiling(monkeypatch)
    real_open = pipeline.open_image

    def open_image(path, *args, **kwargs):
        if path == files[0]:
            assert later_checked.wait(WAIT), "file 1's header was not checked while file 0's was"
        try:
            return real_open(path, *args, **kwargs)
        finally:
            if path == files[1]:
                later_checked.set()

    monkeypatch.setattr(pipeline, "open_image", open_image)
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with ConversionProgress(2) as progress:
        assert convert_files(files, storage, settings, None, progress) == 0
    assert tiled == ["page-0", "page-1"]


@pytest.mark.timeout(WAIT)
def test_a_conversion_that_breaks_before_its_turn_gives_the_turn_up(tmp_path, settings, monkeypatch):
    """An unexpected error before the turn (not a refusal, which takes its turn to be told in order) must not
    leave the next file waiting for a turn that never ends: that file still tiles, and the error reaches the
    caller once it has (without the turn given up, this hangs until the timeout)."""
    files = _files(tmp_path, 2)
    real_open, tiled = pipeline.open_image, _record_tiling(monkeypatch)

    def open_image(path, *args, **kwargs):
        if path == files[0]:
            raise RuntimeError("a bug")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "open_image", open_image)
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with pytest.raises(RuntimeError, match="a bug"), ConversionProgress(2) as progress:
        convert_files(files, storage, settings, None, progress)  # returns once page-1's conversion has ended
    assert tiled == ["page-1"]


def test_ctrl_c_while_an_image_converts_leaves_no_staging_folder(tmp_path, settings, monkeypatch):
    """Ctrl-C reaches the main thread while it waits for image 1, which is still writing into its staging
    folder: the folder goes only once that conversion has stopped, and nothing half-made is published."""
    real_sizes, real_settle = pipeline.write_sizes, cli_convert._InFlight._settle_oldest
    interrupted = threading.Event()
    settled = []

    def sizes(root, image_id, *args):
        if image_id == "page-1":
            assert interrupted.wait(WAIT)  # still converting when the interrupt arrives
        return real_sizes(root, image_id, *args)

    def settle(flight):  # the second wait is for page-1: Ctrl-C arrives then
        if len(settled) == 1:
            interrupted.set()
            raise KeyboardInterrupt
        settled.append(len(settled))
        return real_settle(flight)

    monkeypatch.setattr(pipeline, "write_sizes", sizes)
    monkeypatch.setattr(cli_convert._InFlight, "_settle_oldest", settle)
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with pytest.raises(KeyboardInterrupt), ConversionProgress(4) as progress:
        convert_files(_files(tmp_path, 4), storage, settings, None, progress)
    assert (tmp_path / "tiles" / "page-0" / "info.json").is_file()
    assert sorted(p.name for p in (tmp_path / "tiles").iterdir()) == ["page-0", "page-0.dzi", "page-0_files"]


def test_a_documents_pages_overlap_like_files_and_its_manifest_lists_them_in_order(tmp_path, settings, monkeypatch):
    most = _expect_overlap(monkeypatch, earlier="book/p0001", later="book/p0002")
    _, failures = _book_then_a_photo(tmp_path, settings)

    assert failures == 0 and max(most) == 1
    manifest = json.loads((tmp_path / "tiles" / "book" / "manifest.json").read_text())
    canvases = [(c["width"], c["height"]) for c in manifest["items"]]
    assert canvases == [(200, 300), (250, 300), (300, 300)]
    assert (tmp_path / "tiles" / "page-0" / "info.json").is_file()
    assert not [p for p in (tmp_path / "tiles").iterdir() if p.name.startswith(".staging")]


def test_a_document_with_a_failing_page_gets_no_manifest_and_the_next_file_still_converts(
    tmp_path, settings, monkeypatch, capsys
):
    real_tile = pipeline.write_deep_zoom

    def tile(image, root, image_id, *args):
        if image_id == "book/p0002":
            raise pyvips.Error("VipsJpeg: Premature end of input file")
        return real_tile(image, root, image_id, *args)

    monkeypatch.setattr(pipeline, "write_deep_zoom", tile)
    book, failures = _book_then_a_photo(tmp_path, settings)

    assert failures == 1
    assert not (tmp_path / "tiles" / "book" / "manifest.json").exists()
    assert (tmp_path / "tiles" / "page-0" / "info.json").is_file()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {book}: rejected: the pixel data is damaged")
    assert not [p for p in (tmp_path / "tiles").iterdir() if p.name.startswith(".staging")]


def _book_then_a_photo(tmp_path, settings):
    """A 3-page PDF, then a photo, in one call: the book and the number of files that failed."""
    from tests.pipeline.test_documents import three_page_pdf

    book = three_page_pdf(tmp_path / "book.pdf")
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with ConversionProgress(2) as progress:
        failures = convert_files(
            [book, *_files(tmp_path, 1)], storage, settings.with_overrides(pdf_dpi=72), None, progress
        )
    return book, failures


def test_a_decoded_master_is_let_go_before_the_next_one_decodes(tmp_path, settings, monkeypatch):
    """Two in flight must not mean two decoded masters in memory: a JPEG 2000 master is decoded whole, so by
    the time image 1 is decoded (in its turn, after its header was checked beside image 0's tiling), image 0's
    describing work holds no reference to its pixels."""
    decoded, held = [], []
    real_decode = pipeline.decode_master

    def decode_master(*args, **kwargs):
        if decoded:
            held.append(sys.getrefcount(decoded[-1]) - 2)  # beyond this list's reference and getrefcount's argument
        decoded.append(real_decode(*args, **kwargs))
        return decoded[-1]

    monkeypatch.setattr(pipeline, "decode_master", decode_master)
    masters = [jpeg2000(photo(900, 700), tmp_path / f"master-{index}.jp2") for index in range(3)]
    storage = LocalStorage(tmp_path / "tiles", tmp_path / "meta")
    with ConversionProgress(3) as progress:
        assert convert_files(masters, storage, settings, None, progress) == 0
    assert held == [0, 0]
