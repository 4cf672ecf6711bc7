"""A second process that sends replies while a long poll is still settling the backlog.

Why: in a registration rush the poll reads hundreds of mails, and until now the first reply
left only after the last mail was settled. Parsing, deciding and sending are all CPU work in
Python, so a sending thread only takes turns with the poll under the GIL (measured in
bench/rush.py: no gain); a process sends on the second core. The outbox claims
(`Store.claim_due`) already make two senders safe, and this one never waits for the poll's
write lock, neither to claim replies (`Claims`) nor to mark them sent (`SentMarks`).

It is started only for a backlog of more than one batch: a single new mail is answered by
the poll's own send right after it, as before. It stops after the reply in hand when the poll
is done or when its parent dies (the pipe closes); what it had claimed but not sent is free
again at once (the claim names a process that no longer exists) and the poll's own send
takes it. SIGINT and SIGTERM are the parent's business: the parent tells it to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection

from mailbot.clock import utc_now
from mailbot.config import Config
from mailbot.helpers import freeze_startup_heap, helper_context, is_forked, name_this_process
from mailbot.send.smtp import send_outbox
from mailbot.store.db import BUSY_TIMEOUT_MS, Store

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.2  # the pause after a pass that ended without sending (a sick server)


@contextmanager
def sending_alongside(config: Config) -> Iterator[None]:
    """Run a sender process for the duration of the `with` block, then stop it cleanly."""
    context = helper_context()
    parent_end, child_end = context.Pipe()
    level = logging.getLogger("mailbot").getEffectiveLevel()
    # A forked child holds a copy of the parent's end too: it closes it, or the pipe would
    # never end when the parent dies.
    inherited = parent_end if is_forked(context) else None
    process = context.Process(
        target=_main,
        args=(config, level, child_end, inherited, os.getpid()),
        name="mailbot-sender",
        daemon=True,
    )
    process.start()
    child_end.close()
    log.info(
        "sending alongside the poll (process %s, %s)",
        process.pid,
        "forked" if inherited is not None else "spawned",
    )
    try:
        yield
    finally:
        with suppress(OSError):  # gone already: join() says how it ended
            parent_end.send("stop")
        # One SMTP transaction and one mark at most, each bounded by its own timeout.
        process.join(timeout=config.smtp.timeout_seconds * 2 + BUSY_TIMEOUT_MS / 1000 + 10)
        if process.is_alive():
            log.warning("the sender process did not stop in time; killing it")
            process.kill()  # SIGTERM is ignored there, on purpose
            process.join(5)
        elif process.exitcode:
            log.warning("the sender process ended with exit code %s", process.exitcode)
        parent_end.close()


def _main(
    config: Config, level: int, pipe: Connection, inherited: Connection | None, parent: int
) -> None:
    if inherited is not None:
        inherited.close()
    name_this_process("mailbot-send")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from mailbot.cli import setup_logging  # the worker's own log format and levels

    setup_logging(verbose=level <= logging.DEBUG)
    store = Store(config.database_url)
    freeze_startup_heap()  # what the store and, when spawned, the imports built here
    try:
        asyncio.run(_send_until_told(store, config, pipe, parent))
    finally:
        store.close()


async def _send_until_told(store: Store, config: Config, pipe: Connection, parent: int) -> None:
    def keep_going() -> bool:
        # "stop", or the end of the pipe when the parent died. The parent's pid as well: a
        # read-ahead forked after this helper (when it was not started with the poll) holds
        # a copy of the parent's end of the pipe until it notices the death itself (up to a
        # second, longer in a long regex).
        return not pipe.poll() and os.getppid() == parent

    while keep_going():
        report = await send_outbox(
            store,
            config.smtp,
            config.organiser.address,
            utc_now,
            hourly_cap=config.mailbot.max_replies_per_hour,
            wait_for_lock=False,
            keep_going=keep_going,
        )
        if report.capped:
            # Nothing may go out before the hour has passed; the poll's own send says so
            # once more at its end. Trying again here would only repeat the alert.
            return
        if not report.sent:
            await asyncio.sleep(IDLE_SECONDS)
