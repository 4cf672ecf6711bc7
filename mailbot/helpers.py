"""What mailbot's helper processes (reading ahead, sending) share: how they start, their names.

Why fork when it is safe: a spawned helper is a new interpreter that imports SQLAlchemy and
the rest again, 0.6-0.8 s of CPU each, taken from the two cores the rush needs, and the
first replies wait for it. A forked helper has everything imported and starts in
milliseconds. Forking is only safe while this process has a single thread: a lock held by
another thread at the moment of the fork would stay held in the child forever. `poll --once`
polls in its main thread without other threads; the worker (scheduler, IDLE) has threads and
spawns. Only on Linux: macOS offers fork, but its system libraries do not survive it.

The poll itself does not import the parser: a forked read-ahead helper imports it while the
poll imports the rest, and a poll that finds no mail never needs it. Nor does the poll import
jinja2 and icalendar before its first fetch: it does while the helper reads (`_warm_up`).

A forked child inherits the parent's open IMAP socket and database connections. It never
touches them and leaves through os._exit, so nothing of the parent's is closed, finalized
or written to in it.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import sys
import threading
from multiprocessing.context import BaseContext

_PR_SET_NAME = 15  # from <linux/prctl.h>; the kernel keeps at most 15 bytes


def helper_context() -> BaseContext:
    """Fork on Linux if this process has a single thread, spawn otherwise."""
    if sys.platform.startswith("linux") and _single_threaded():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def is_forked(context: BaseContext) -> bool:
    return context.get_start_method() == "fork"


def _single_threaded() -> bool:
    """No other thread, also none that a C extension started (threading does not see those)."""
    if threading.active_count() != 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


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


def freeze_startup_heap() -> None:
    """Exempt everything the imports built from the garbage collector, once they are done.

    The modules of SQLAlchemy, pydantic and the rest, with everything they built, live as
    long as the process, yet every full collection walks them all again, and so does the
    interpreter at exit: 0.15-0.25 s of CPU at the end of every `poll --once`, on one core,
    after the last reply had left (bench/rush.py). Frozen, they are skipped (`gc.freeze`);
    a forked helper also no longer writes to their pages when it collects, so its copy of
    them stays shared with this process. Call it when the imports a command needs are done
    and before any helper is forked. Cyclic garbage left from the imports is frozen with
    them and never freed: a few kilobytes, once.
    """
    gc.freeze()
