"""Background work that must not slow down libvips' tiling.

A conversion overlaps its other work with dzsave: importing iiif-prezi3 and
numpy and running exiftool while it tiles, then the IIIF links, the palette
and the sizes while the next image tiles (in the CLI). On two cores that work
competes with libvips' threads as an equal and stretches the tiling; at idle
priority the scheduler gives it only the CPU time libvips leaves unused (the
JPEG decode is serial, so there is plenty).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

IDLE_NICENESS = 19


def soon(work: Callable[[], object], name: str) -> None:
    """Run ``work`` on a thread of its own at idle priority (an import a conversion hides behind tiling)."""

    def at_idle_priority() -> None:
        lower_this_thread()
        work()

    threading.Thread(target=at_idle_priority, name=name, daemon=True).start()


def lower_this_thread() -> None:
    """Run the calling thread (and processes it starts) at idle priority, where that is per thread.

    Linux applies ``setpriority`` to one thread when given a thread id; elsewhere
    it would renice the whole process, so there this does nothing. A thread can
    never raise its priority again, so call it only in threads made for background work.
    """
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IDLE_NICENESS)
    except OSError:  # a sandbox that forbids it: background work then runs at normal priority
        pass
