"""What mailbot's helper processes (reading ahead, sending) share: how they start, their names.

Why fork when it is safe: a spawned helper is a new interpreter that imports the parser or
SQLAlchemy again, 0.6-0.8 s of CPU each, taken from the two cores the rush needs, and the
first replies wait for it. A forked helper has everything imported and starts in
milliseconds. Forking is only safe while this process has a single thread: a lock held by
another thread at the moment of the fork would stay held in the child forever. `poll --once`
polls in its main thread without other threads; the worker (scheduler, IDLE) has threads and
spawns.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import sys
import threading
from multiprocessing.context import BaseContext

_PR_SET_NAME = 15  # from <linux/prctl.h>; the kernel keeps at most 15 bytes


def helper_context() -> BaseContext:
    """Fork if this process has a single thread (and can fork), spawn otherwise."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def name_this_process(name: str) -> None:
    """A name in `ps -o comm`, `top` and /proc (Linux only), so an admin who sees a helper
    busy or stuck knows which job it does. Best effort: elsewhere it stays `python`."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)  # this process's own symbols, libc's among them
        libc.prctl(_PR_SET_NAME, name.encode("ascii")[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
