"""A name for each helper process in `ps -o comm`, `top` and /proc (Linux only).

All of mailbot's processes are `python`; an admin who sees one of them busy or stuck should
see which job it does (reading ahead, sending) without reading command lines.
"""

from __future__ import annotations

import ctypes
import sys

_PR_SET_NAME = 15  # from <linux/prctl.h>; the kernel keeps at most 15 bytes


def name_this_process(name: str) -> None:
    """Best effort: on other systems the process keeps its name."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)  # this process's own symbols, libc's among them
        libc.prctl(_PR_SET_NAME, name.encode("ascii")[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
