"""Work that overlaps with tiling runs at idle priority, and only the threads made for it do."""

import os
import subprocess
import sys
import threading

import pytest

from app.pipeline import background, metadata

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are a Linux feature")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_exiftool_thread_and_its_children_run_at_idle_priority():
    before = _niceness()
    assert metadata._exiftool_thread().submit(_niceness).result() == background.IDLE_NICENESS
    child = metadata._exiftool_thread().submit(
        lambda: subprocess.run(["sh", "-c", "cut -d' ' -f19 /proc/self/stat"], capture_output=True, text=True)
    )
    assert int(child.result().stdout) == background.IDLE_NICENESS  # exiftool inherits it
    assert _niceness() == before  # the caller's own thread is untouched


def test_the_manifest_library_is_imported_at_idle_priority(monkeypatch):
    seen = []
    monkeypatch.setattr("app.pipeline.manifest.prezi", lambda: seen.append(_niceness()))
    from app.pipeline import manifest

    manifest.warm_up()
    for thread in threading.enumerate():
        if thread.name == "prezi-import":
            thread.join(10)
    assert seen == [background.IDLE_NICENESS]


def test_the_sizes_and_palette_run_at_idle_priority_and_libvips_never_runs_there(tmp_path, settings, monkeypatch):
    """The work after tiling leaves the CPU to the next tiling; a libvips operation started from an idle thread
    could start pool threads that keep the idle priority, and the next image's dzsave would crawl on them."""
    import pyvips

    from app import pipeline
    from tests.helpers import convert_local, photo

    real_call, real_sizes, real_colours = pyvips.Operation.call, pipeline.write_sizes, pipeline.palette.dominant_colours
    libvips_at, sizes_at, colours_at = set(), [], []

    def call(name, *args, **kwargs):
        libvips_at.add(_niceness())
        return real_call(name, *args, **kwargs)

    def sizes(*args, **kwargs):
        sizes_at.append(_niceness())
        return real_sizes(*args, **kwargs)

    def colours(*args, **kwargs):
        colours_at.append(_niceness())
        return real_colours(*args, **kwargs)

    monkeypatch.setattr(pyvips.Operation, "call", staticmethod(call))
    monkeypatch.setattr(pipeline, "write_sizes", sizes)
    monkeypatch.setattr(pipeline.palette, "dominant_colours", colours)
    src = tmp_path / "page.jpg"
    photo(1300, 900).jpegsave(str(src))  # its largest size, 1300x900, is stitched from four tiles
    conversion = convert_local(src, tmp_path / "out", settings)

    assert sizes_at == colours_at == [background.IDLE_NICENESS]
    assert libvips_at == {_niceness()}  # every operation (the dzsave too) from a thread at normal priority
    assert any(path.endswith("/full/1300,900/0/default.jpg") for path in conversion.descriptors)
