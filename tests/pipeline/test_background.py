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
