"""Read fetched mail into what the rules need: the parsed mail, its dedupe key, its arrival.

Pure and independent of the database, which is why it can run ahead of the pipeline in a
helper process during a rush (`ReadAhead`): parsing is about a third of the CPU a mail costs,
and while one batch is settled in the write transaction the next is read on another core.
The result is the same either way; `read_inline` is the path for everything else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.context import BaseContext

from mailbot.config import Config
from mailbot.forward import unwrap_forward
from mailbot.helpers import freeze_startup_heap, helper_context, is_forked, name_this_process
from mailbot.inbox.imap import FetchedMail
from mailbot.models import ParsedMail

log = logging.getLogger("mailbot")


@dataclass(frozen=True)
class Reading:
    """One mail as read: the parsed content, the dedupe key, and the arrival that counts."""

    parsed: ParsedMail
    key: str
    arrival: datetime
    forwarded_by: str | None


def parse_for(config: Config, raw: bytes) -> ParsedMail:
    """`parse_mail` with what the config knows: the events and our own addresses."""
    from mailbot.parse import parse_mail  # not the poll's import (mailbot/helpers.py)

    return parse_mail(
        raw,
        default_event=config.current_event.number,
        known_events=[e.number for e in config.events],
        own_addresses=config.own_addresses,
    )


def dedupe_key(parsed: ParsedMail, raw: bytes) -> str:
    """Recognises the same mail under a new UID (after a UIDVALIDITY change, or delivered twice).

    The Message-ID alone is not enough: broken clients reuse them, and a different mail with a
    reused ID must not be taken for a copy. Sender, date and subject go into the key too, and
    the key is hashed, so it holds no personal data.
    """
    headers = parsed.headers
    if headers.message_id:
        date = headers.date.isoformat() if headers.date else ""
        basis = "\x00".join((headers.message_id, headers.from_address or "", date, headers.subject))
        return "mid:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_mail(config: Config, mail: FetchedMail, oversized: bool) -> Reading:
    parsed = parse_for(config, mail.raw)
    key = dedupe_key(parsed, mail.raw)
    if oversized:
        return Reading(parsed, f"{key}#size{mail.size}", mail.arrival, None)
    if (parsed.headers.from_address or "") in config.own_addresses:
        forwarded = unwrap_forward(mail.raw, config.tz)
        if forwarded is not None:
            # An organiser forwarded a participant's mail: it is the participant we answer,
            # and the original date is the one that counts for the deadline.
            return Reading(
                parse_for(config, forwarded.raw),
                key,
                forwarded.arrival or mail.arrival,
                parsed.headers.from_address,
            )
    return Reading(parsed, key, mail.arrival, None)


def read_inline(config: Config, mails: Sequence[tuple[FetchedMail, bool]]) -> list[Reading]:
    return [read_mail(config, mail, oversized) for mail, oversized in mails]


Pending = Callable[[], list[Reading]]


class ReadInline:
    """Reads a batch when asked for its result, in this process."""

    # Whether the first batch submitted is read in another process while this one goes on.
    reads_first_batch_elsewhere = False

    def __init__(self, config: Config) -> None:
        self.config = config

    def submit(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        return lambda: read_inline(self.config, mails)

    def close(self) -> None:
        pass


class ReadAhead(ReadInline):
    """Reads batches in a helper process, so the next batch is parsed while this one settles.

    A spawned helper needs about half a second to start (a new interpreter importing the
    parser), so batches submitted before it is up are read here and the first replies do not
    wait for it. A forked one (mailbot/helpers.py) is up at once and gets every batch.
    If the helper dies (killed, out of memory), the batch is read here instead and the rest of
    the cycle goes on in this process: a broken helper costs speed, never a mail.
    """

    def __init__(self, config: Config, context: BaseContext | None = None) -> None:
        super().__init__(config)
        context = context or helper_context()
        self.read_here_until_up = not is_forked(context)
        self.reads_first_batch_elsewhere = not self.read_here_until_up
        self.pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=_start_helper,
            initargs=(config, os.getpid()),
        )
        self.up: Future[None] = self.pool.submit(_ready)  # starts the helper now

    def submit(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        if self.pool is None or (self.read_here_until_up and not self.up.done()):
            return super().submit(mails)
        try:
            future: Future[list[Reading]] = self.pool.submit(_read_in_helper, list(mails))
        except (BrokenProcessPool, RuntimeError):
            return self._give_up(mails)

        def result() -> list[Reading]:
            try:
                return future.result()
            except BrokenProcessPool:
                return self._give_up(mails)()

        return result

    def _give_up(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        log.warning("the read-ahead process is gone; reading mail in this process instead")
        self.close()
        return ReadInline.submit(self, mails)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


_HELPER_CONFIG: Config | None = None


def _start_helper(config: Config, parent: int) -> None:
    global _HELPER_CONFIG
    name_this_process("mailbot-read")
    # Ctrl-C in a terminal reaches the whole process group; it is for the worker, which
    # stops after its batch. (SIGTERM may end the helper: the poll then reads by itself.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's pid comes from the parent: a parent killed while this helper was still
    # starting would otherwise be read here as init's, and the helper would wait forever
    # (CI runs of the crash test left such orphans).
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    _HELPER_CONFIG = config
    _step_back()
    # "Up" means ready to read: a spawned helper imports the parser now (about 0.4 s).
    import mailbot.parse  # noqa: F401

    freeze_startup_heap()


HELPER_NICENESS = 10


def _step_back() -> None:
    """Let the poll, the sender and the SMTP server run first whenever they can (nice 10).

    On a machine with fewer cores than busy processes the scheduler shared the CPU evenly,
    and the sender, which takes turns with the SMTP server for every reply, fell behind:
    a 2,000-mail rush ended with about 300 replies still to send over one connection while
    a core idled. This helper only ever works one batch ahead of the poll, so it loses
    nothing by waiting: when the poll needs its batch, the poll waits and the helper gets the
    core. In 16 interleaved runs (bench/timeline.py) the rush took 7 % less time, faster in
    14 of them.
    """
    with suppress(AttributeError, OSError):  # no os.nice (Windows), or a sandbox forbids it
        os.nice(HELPER_NICENESS)


def _exit_with(parent: int) -> None:
    """A pool worker whose parent was killed would wait on its queue forever: leave too."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _ready() -> None:
    """The helper's first task: its result says the helper has started."""


def _read_in_helper(mails: list[tuple[FetchedMail, bool]]) -> list[Reading]:
    assert _HELPER_CONFIG is not None
    return read_inline(_HELPER_CONFIG, mails)
