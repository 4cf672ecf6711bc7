"""Send the outbox over SMTP with aiosmtplib: at least once, marked sent exactly once.

A reply is marked sent only after the server accepted it, in its own small transaction. A crash
between the two can make one reply go out twice — with the same Message-ID, since the bytes
come from the outbox — but never lose it. Temporary failures (4xx, network) back off and retry;
permanent ones (5xx) are kept as failed for the organiser to see.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import Connection

from mailbot.config import SmtpSettings, redacted
from mailbot.store.db import OutboxItem, Store, StoreBusy, process_holder

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)
# A sender beside the poll writes its marks together: this many, or those of this long.
MARK_BATCH = 16
MARK_SECONDS = 0.25


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


class SentMarks:
    """Marks replies sent once the server accepted them.

    By default each mark is its own transaction right away. With `wait=False` (the sender
    that runs beside a long poll, send/background.py) marks are written together, up to
    `MARK_BATCH` of them or those of the last `MARK_SECONDS`, and a mark that finds the poll
    holding the database's write lock stays in memory and goes in with the next ones, so the
    SMTP connection never stalls behind the poll. A transaction per reply was a third of that
    sender's CPU in a rush (bench/rush.py). A crash before they are written means those few
    replies go out once more, with the same Message-ID: at least once, never lost.
    """

    def __init__(self, store: Store, *, wait: bool = True) -> None:
        self.store = store
        self.wait = wait
        self.pending: list[tuple[int, datetime]] = []
        self._oldest = 0.0  # time.monotonic() of the first pending mark

    def add(self, item_id: int, at: datetime) -> None:
        if not self.pending:
            self._oldest = time.monotonic()
        self.pending.append((item_id, at))
        self.tick()

    def tick(self) -> None:
        """Write the marks now (`wait`), or if there are enough or they are old: also between
        replies that fail, so a stalling server never keeps marks waiting until the claim runs
        out."""
        if self.pending and (
            self.wait
            or len(self.pending) >= MARK_BATCH
            or time.monotonic() - self._oldest >= MARK_SECONDS
        ):
            self.flush(wait=self.wait)

    def flush(self, *, wait: bool = True) -> None:
        if not self.pending:
            return
        try:
            with self.store.transaction(wait=wait) as conn:
                written = self.write(conn)
        except StoreBusy:
            return
        self.forget(written)

    def write(self, conn: Connection) -> int:
        """Write the pending marks in the caller's transaction; `forget` them once it commits."""
        for item_id, at in self.pending:
            self.store.mark_sent(conn, item_id, at)
        return len(self.pending)

    def forget(self, written: int) -> None:
        del self.pending[:written]


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … capped at two hours: fast recovery, no hammering of a sick server."""
    return min(BASE_DELAY * (2 ** max(0, attempts)), MAX_DELAY)


def smtp_client(
    settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None
) -> aiosmtplib.SMTP:
    # Loading the system's certificates costs 30-40 ms: only for a connection that uses them.
    context = None
    if settings.security != "none":
        context = ssl_context or ssl.create_default_context()
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.security == "ssl",
        start_tls=settings.security == "starttls",
        tls_context=context,
        username=settings.username,
        password=settings.password,
        timeout=settings.timeout_seconds,
    )


async def send_outbox(
    store: Store,
    settings: SmtpSettings,
    envelope_from: str,
    now: Callable[[], datetime],
    ssl_context: ssl.SSLContext | None = None,
    hourly_cap: int = 5000,
    *,
    wait_for_lock: bool = True,
    keep_going: Callable[[], bool] = lambda: True,
) -> SendReport:
    """Send every due reply over one SMTP connection (opened only when there is work).

    `keep_going` is asked before each reply: once it says no, the rest of the claim is left
    (its claim ends with this process, see `Store.claim_due`) and nothing more is claimed.
    """
    report = SendReport()
    marks = SentMarks(store, wait=wait_for_lock)
    due = _claim(store, now, hourly_cap)
    if not due:
        return report
    client = smtp_client(settings, ssl_context)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = redacted(exc, settings.password)
        log.warning(
            "SMTP %s:%s unreachable: %s; %d replies wait",
            settings.host,
            settings.port,
            error,
            len(due),
        )
        for item in due:
            _retry_or_fail(store, item, now(), f"connect: {error}", report, quiet=True)
        return report
    try:
        # A rush queues more than one claim holds: keep going until nothing is due.
        while due:
            for item in due:
                if not keep_going():
                    break
                marks.tick()
                await _send_one(client, store, item, envelope_from, now, report, marks, settings)
            more = keep_going() and report.retried == report.failed == 0
            if more:
                due = _claim(store, now, hourly_cap, marks)
            else:
                marks.flush()
                due = []
    finally:
        try:
            marks.flush()
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return report


def _claim(
    store: Store, now: Callable[[], datetime], hourly_cap: int, marks: SentMarks | None = None
) -> list[OutboxItem]:
    """The next due replies, within the hourly cap (which pauses sending and alerts).

    The pending "sent" marks go first, in the same transaction: a claim may hand back our own
    claimed entries, and one sent but not yet marked would go out twice. One transaction,
    not two: each waits for the poll's write lock in a rush (5-180 ms, traced).
    """
    with store.transaction() as conn:
        written = marks.write(conn) if marks is not None else 0
        sent_last_hour = store.sent_since(conn, now() - timedelta(hours=1))
        budget = hourly_cap - sent_last_hour
        if budget <= 0:
            store.set_health(
                conn,
                "alert:hourly_cap",
                f"sending paused: {sent_last_hour} mails in the last hour "
                "(mailbot.max_replies_per_hour)",
                now(),
            )
            log.error(
                "sending paused: %d mails went out in the last hour, the cap is %d; "
                "look for a mail loop",
                sent_last_hour,
                hourly_cap,
            )
            due: list[OutboxItem] = []
        else:
            store.set_health(conn, "alert:hourly_cap", "", now())  # sending is within bounds
            due = store.claim_due(conn, now(), process_holder(), limit=min(500, budget))
    if marks is not None:
        marks.forget(written)  # committed: written once
    return due


async def _send_one(
    client: aiosmtplib.SMTP,
    store: Store,
    item: OutboxItem,
    envelope_from: str,
    now: Callable[[], datetime],
    report: SendReport,
    marks: SentMarks,
    settings: SmtpSettings,
) -> None:
    try:
        if not client.is_connected:
            await client.connect()
        await client.sendmail(envelope_from, item.recipients, item.raw)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if all(c >= 500 for c in codes):
            _fail(store, item, now(), f"recipients refused: {exc}", report)
        else:
            _retry_or_fail(store, item, now(), f"recipients refused: {exc}", report)
        return
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code >= 500:
            _fail(store, item, now(), f"{exc.code} {exc.message}", report)
        else:
            _retry_or_fail(store, item, now(), f"{exc.code} {exc.message}", report)
        return
    except (aiosmtplib.SMTPException, OSError) as exc:
        _retry_or_fail(store, item, now(), redacted(exc, settings.password), report)
        return
    marks.add(item.id, now())
    report.sent += 1
    log.info("sent %s to %s", item.message_id, ", ".join(item.recipients))


def _retry_or_fail(
    store: Store,
    item: OutboxItem,
    at: datetime,
    error: str,
    report: SendReport,
    *,
    quiet: bool = False,
) -> None:
    """Back off and retry, or give up; `quiet` when one line already said why (server down)."""
    if item.attempts + 1 >= MAX_ATTEMPTS:
        _fail(store, item, at, f"gave up after {MAX_ATTEMPTS} attempts: {error}", report)
        return
    delay = backoff(item.attempts)
    with store.transaction() as conn:
        store.mark_retry(conn, item.id, at, delay, error)
    report.retried += 1
    (log.debug if quiet else log.warning)(
        "reply %s not sent (%s); retry in %ss", item.message_id, error, int(delay.total_seconds())
    )


def _fail(store: Store, item: OutboxItem, at: datetime, error: str, report: SendReport) -> None:
    with store.transaction() as conn:
        store.mark_failed(conn, item.id, at, error)
    report.failed += 1
    log.error("reply %s failed permanently: %s", item.message_id, error)
