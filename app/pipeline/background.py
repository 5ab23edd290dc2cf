"""Background work that must not slow down libvips' tiling.

A conversion overlaps work that needs no pixels (importing iiif-prezi3,
exiftool, making IIIF folders) with dzsave. On two cores that work competes
with libvips' threads as an equal and stretches the tiling; at idle priority
the scheduler gives it only the CPU time libvips leaves unused (the JPEG
decode is serial, so there is plenty), and it still finishes first.
"""

from __future__ import annotations

import os
import sys
import threading

IDLE_NICENESS = 19


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
