"""Send the outbox over SMTP with aiosmtplib: at least once, marked sent exactly once.

A reply is marked sent only after the server accepted it, in its own small transaction. A crash
between the two can make one reply go out twice — with the same Message-ID, since the bytes
come from the outbox — but never lose it. Temporary failures of a reply (4xx, the connection
lost while it was sent) back off and retry, up to MAX_ATTEMPTS; permanent ones (5xx) are kept
as failed for the organiser to see. A server that cannot be reached or refuses the login is no
reply's fault: the replies wait, however long it lasts, and the sender as a whole backs off
(`_wait_for_server`), with an alert for `mailbot status` and the digest.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import Connection

from mailbot.config import SMTP_PASSWORD_ENV, SmtpSettings, redacted
from mailbot.send.transfer import deliver
from mailbot.store.db import OutboxItem, Store, StoreBusy, process_holder

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)
# The health note that says the server cannot be reached or refuses the login; its time is
# when that began, and the sender's backoff grows with it.
SERVER_ALERT = "alert:smtp"
# How the error of a reply that waits for the server begins (`_wait_for_server`).
WAITING_FOR_SERVER = "connect: "
# A sender beside the poll writes its marks together: this many, or those of this long.
MARK_BATCH = 16
MARK_SECONDS = 0.25
# A sender beside the poll claims this many replies at a time, and the next ones while it
# still holds fewer than `BESIDE_LOW` (class Claims). Seconds: how soon it tries the write
# lock again when the poll held it (doubling up to BUSY_PAUSE_MAX, class LockBackoff), and
# how soon it looks again when nothing was due.
BESIDE_CLAIM = 64
BESIDE_LOW = 16
BUSY_PAUSE = 0.005
BUSY_PAUSE_MAX = 0.02
EMPTY_PAUSE = 0.02


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    capped: bool = False  # the hourly cap stopped sending (a suspected mail loop)
    unreachable: bool = False  # the server could not be reached, or refused the login


class LockBackoff:
    """How long the sender beside the poll leaves the database alone after finding the
    poll's write lock taken.

    Each try that finds the lock taken is a transaction begun and given up. The poll holds
    the lock for a whole batch (0.1-0.2 s in a rush), and trying again before every reply
    made about 1,190 such tries in a 2,000-mail rush (351 claims, 838 mark writes). Now the
    pause doubles from BUSY_PAUSE to BUSY_PAUSE_MAX while the lock stays taken and ends with
    the first write that gets through; the replies in hand go out meanwhile. The cap is
    short because the poll leaves the lock free only for moments between batches (its IMAP
    MOVE and FETCH), and a sender that misses them claims nothing.
    """

    def __init__(self) -> None:
        self._until = 0.0  # time.monotonic() before which nothing is tried
        self._pause = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self._until

    def taken(self) -> None:
        self._pause = min(BUSY_PAUSE_MAX, self._pause * 2 or BUSY_PAUSE)
        self._until = time.monotonic() + self._pause

    def free(self) -> None:
        self._pause = self._until = 0.0

    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())


class SentMarks:
    """Marks replies sent once the server accepted them.

    By default each mark is its own transaction right away. With `wait=False` (the sender
    that runs beside a long poll, send/background.py) marks are written together, up to
    `MARK_BATCH` of them or those of the last `MARK_SECONDS`, and a mark that finds the poll
    holding the database's write lock stays in memory and goes in with the next ones, so the
    SMTP connection never stalls behind the poll. A transaction per reply was a third of that
    sender's CPU in a rush (bench/rush.py). A crash before they are written means those few
    replies go out once more, with the same Message-ID: at least once, never lost.
    After the lock was found taken, marks (and claims, which share `backoff`) wait for the
    pause of `LockBackoff`.
    The end of an outage (`reached`) goes in with the next write as well: the "unreachable"
    alert is cleared, and the replies that waited for the server are due at once, without a
    transaction of their own.
    """

    def __init__(self, store: Store, *, wait: bool = True) -> None:
        self.store = store
        self.wait = wait
        self.backoff = LockBackoff()
        self.pending: list[tuple[int, datetime]] = []
        self._oldest = 0.0  # time.monotonic() of the first pending mark
        self.reached: datetime | None = None  # when a connection got through, not yet written

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
            or (
                (len(self.pending) >= MARK_BATCH or time.monotonic() - self._oldest >= MARK_SECONDS)
                and self.backoff.ready()
            )
        ):
            self.flush(wait=self.wait)

    def flush(self, *, wait: bool = True) -> None:
        if not self.pending and self.reached is None:
            return
        try:
            with self.store.transaction(wait=wait) as conn:
                written = self.write(conn)
        except StoreBusy:
            self.backoff.taken()
            return
        self.backoff.free()
        self.forget(written)

    def write(self, conn: Connection) -> int:
        """Write the pending marks in the caller's transaction; `forget` them once it commits."""
        if self.pending:
            self.store.mark_all_sent(conn, self.pending)
        if self.reached is not None:
            self.store.set_health(conn, SERVER_ALERT, "", self.reached)
            # The replies that waited out the outage go in this pass, not after their backoff
            # (up to two hours) behind replies queued since: a "you moved up" long before
            # the "you are on the waiting list" it follows.
            self.store.due_again(conn, self.reached, WAITING_FOR_SERVER)
        return len(self.pending)

    def forget(self, written: int) -> None:
        del self.pending[:written]
        self.reached = None


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

    `keep_going` is asked before each reply and each claim: once it says no, the rest of the
    claim is left (its claim ends with this process, see `Store.claim_due`) and nothing more
    is claimed.

    `wait_for_lock=False` is the sender beside a long poll (send/background.py): it never
    waits for the poll's write lock, and with nothing due it keeps its connection and looks
    again (`Claims`), so it returns only when `keep_going` says no, after a failed reply or
    connection, or at the hourly cap. Give it a `keep_going` that ends.
    """
    report = SendReport()
    marks = SentMarks(store, wait=wait_for_lock)
    claims = Claims(store, now, hourly_cap, marks, beside=not wait_for_lock)
    due: deque[OutboxItem] = deque()
    client: aiosmtplib.SMTP | None = None
    try:
        while keep_going():
            # After a failure nothing more is claimed: the server may be sick, and what is
            # claimed already is tried once (it backs off for the next cycle).
            if report.retried == report.failed == 0:
                due.extend(claims.more(due))
            report.capped = claims.capped
            if not due:
                if claims.beside and report.retried == report.failed == 0 and not claims.capped:
                    await asyncio.sleep(claims.pause())
                    continue
                break
            if client is None or not client.is_connected:
                # The first connection, or a new one after a reply lost the last one.
                opened = client or smtp_client(settings, ssl_context)
                if not await _connect(opened, store, due, now, report, marks, settings):
                    return report
                client = opened
            marks.tick()
            item = due.popleft()
            await _send_one(client, store, item, envelope_from, now, report, marks, settings)
    finally:
        try:
            marks.flush()
        finally:
            if client is not None:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
    return report


async def _connect(
    client: aiosmtplib.SMTP,
    store: Store,
    due: deque[OutboxItem],
    now: Callable[[], datetime],
    report: SendReport,
    marks: SentMarks,
    settings: SmtpSettings,
) -> bool:
    """Open the connection up to the first reply: TCP, TLS, EHLO, AUTH.

    Whatever fails here fails before any reply was handed over, so it is not one of their
    attempts: an outage of a weekend, or a password changed on the server, would otherwise
    use up MAX_ATTEMPTS of every reply queued before it and drop them all for good. The
    claimed replies wait instead (`_wait_for_server`).
    """
    try:
        await client.connect()  # with TLS and AUTH, when configured
        if client.is_ehlo_or_helo_needed:
            # Here rather than in the first reply's `sendmail`, so that a refused EHLO is
            # the server's failure too; falling back to HELO as `sendmail` does.
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        marks.reached = None  # the outage goes on: its alert stays
        error = redacted(exc, settings.password)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            problem = (
                f"refuses the login: {error}; check smtp.username and smtp.password "
                f"(or {SMTP_PASSWORD_ENV})"
            )
        else:
            problem = f"unreachable: {error}"
        _wait_for_server(store, due, now(), problem, report, settings)
        due.clear()
        return False
    marks.reached = now()
    return True


def _wait_for_server(
    store: Store,
    due: Collection[OutboxItem],
    at: datetime,
    problem: str,
    report: SendReport,
    settings: SmtpSettings,
) -> None:
    """The server cannot be reached or refuses the login: the claimed replies wait, without
    an attempt counted against them, and the sender as a whole backs off.

    The alert `SERVER_ALERT` keeps the time the outage began, and the next try waits as
    long as the outage has lasted (at least BASE_DELAY, at most MAX_DELAY): tries after
    30 s, 1, 2, 4 … minutes, then every two hours, in one log line each. The alert shows in
    `mailbot status` and the digest; the first connection that gets through clears it.
    """
    with store.transaction() as conn:
        alert = store.health(conn).get(SERVER_ALERT)
        since = alert[1] if alert is not None and alert[0] else at
        delay = min(MAX_DELAY, max(BASE_DELAY, at - since))
        for item in due:
            store.mark_retry(conn, item.id, at, delay, WAITING_FOR_SERVER + problem, count=False)
        store.set_health(
            conn,
            SERVER_ALERT,
            f"replies wait: SMTP {settings.host}:{settings.port} {problem}",
            since,
        )
    report.retried += len(due)
    report.unreachable = True
    log.warning(
        "SMTP %s:%s %s; %d replies wait, next try in %ds",
        settings.host,
        settings.port,
        problem,
        len(due),
        int(delay.total_seconds()),
    )


class Claims:
    """Which replies a sender claims, and when.

    By default (the poll's own send, `mailbot send`) a claim of up to 500 replies is taken
    when the last one is sent, waiting for the write lock as long as it must.

    Beside a long poll (`beside=True`) that waiting was the sender's largest loss: the poll
    holds the write lock for each batch it settles and takes it again right after, and
    SQLite's busy handler sleeps in steps of up to 100 ms, so the sender woke into the next
    batch again and again: the first claim of a 2,000-mail rush waited 0.9 s, later ones
    35-90 ms each, while the SMTP connection sat idle (bench/rush.py, traced). So the sender
    beside the poll never waits: it claims `BESIDE_CLAIM` replies at a time, tries for the
    next ones as soon as fewer than `BESIDE_LOW` are left, and with the lock taken tries again
    after a pause that grows while it stays taken (`LockBackoff`), sending the replies in
    hand meanwhile. With nothing due, it looks again after `EMPTY_PAUSE`.
    """

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        hourly_cap: int,
        marks: SentMarks,
        *,
        beside: bool,
    ) -> None:
        self.store = store
        self.now = now
        self.hourly_cap = hourly_cap
        self.marks = marks
        self.beside = beside
        self._empty_until = 0.0  # time.monotonic() before which a claim would find nothing
        self._busy = False
        self.capped = False

    def more(self, in_hand: Collection[OutboxItem]) -> list[OutboxItem]:
        """The next claimed replies, or none now (enough in hand, the lock taken, none due)."""
        if self.capped:
            return []
        if not self.beside:
            if in_hand:
                return []
            found, self.capped = _claim(self.store, self.now, self.hourly_cap, self.marks)
            return found
        backoff = self.marks.backoff
        if (
            len(in_hand) >= BESIDE_LOW
            or time.monotonic() < self._empty_until
            or not backoff.ready()
        ):
            return []
        holding = [item.id for item in in_hand]
        try:
            found, self.capped = _claim(
                self.store,
                self.now,
                self.hourly_cap,
                self.marks,
                limit=BESIDE_CLAIM,
                wait=False,
                holding=holding,
            )
        except StoreBusy:
            backoff.taken()
            self._busy = True
            return []
        backoff.free()
        self._busy = False
        if not found:
            self._empty_until = time.monotonic() + EMPTY_PAUSE
        return found

    def pause(self) -> float:
        """How long an empty-handed sender beside the poll waits before it looks again."""
        backoff = self.marks.backoff
        return backoff.remaining() if self._busy or not backoff.ready() else EMPTY_PAUSE


def _claim(
    store: Store,
    now: Callable[[], datetime],
    hourly_cap: int,
    marks: SentMarks | None = None,
    *,
    limit: int = 500,
    wait: bool = True,
    holding: list[int] | None = None,
) -> tuple[list[OutboxItem], bool]:
    """The next due replies, and whether the hourly cap was reached (which pauses sending and
    alerts).

    The pending "sent" marks go first, in the same transaction: a claim may hand back our own
    claimed entries, and one sent but not yet marked would go out twice. One transaction,
    not two: each waits for the poll's write lock in a rush (5-180 ms, traced). `wait=False`
    raises `StoreBusy` instead of waiting for the lock.
    """
    with store.transaction(wait=wait) as conn:
        written = marks.write(conn) if marks is not None else 0
        sent_last_hour = store.sent_since(conn, now() - timedelta(hours=1))
        # Replies in hand count as sent: they go out before the next claim is used up.
        budget = hourly_cap - sent_last_hour - len(holding or ())
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
            due = store.claim_due(
                conn,
                now(),
                process_holder(),
                limit=min(limit, budget),
                holding=holding or (),
            )
    if marks is not None:
        marks.forget(written)  # committed: written once
    return due, budget <= 0


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
    """Hand one reply to the server. Its own failures count as its attempts: a 4xx, and the
    connection lost while it was sent (a reply that breaks the connection each time still
    gives up at MAX_ATTEMPTS); the next reply then opens a new connection (`_connect`)."""
    try:
        await deliver(client, envelope_from, item.recipients, item.raw)
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
    except ValueError as exc:  # UnicodeEncodeError among them
        # Not the server's answer: this reply cannot be put on the wire as it is (say an
        # address with an umlaut, which the mail library cannot encode). Raised on, it ended
        # the whole pass, and as the first reply due it ended every pass after it: nothing
        # was sent any more. Only this reply fails; the connection, which may hold half its
        # envelope, is closed, and the next reply opens a new one.
        client.close()
        reason = f"cannot be sent as it is: {exc.__class__.__name__}: {exc}"
        _fail(store, item, now(), reason, report)
        return
    marks.add(item.id, now())
    report.sent += 1
    log.info("sent %s to %s", item.message_id, ", ".join(item.recipients))


def _retry_or_fail(
    store: Store, item: OutboxItem, at: datetime, error: str, report: SendReport
) -> None:
    """Back off and retry, or give up after MAX_ATTEMPTS of the reply's own failures."""
    if item.attempts + 1 >= MAX_ATTEMPTS:
        _fail(store, item, at, f"gave up after {MAX_ATTEMPTS} attempts: {error}", report)
        return
    delay = backoff(item.attempts)
    with store.transaction() as conn:
        store.mark_retry(conn, item.id, at, delay, error)
    report.retried += 1
    log.warning(
        "reply %s not sent (%s); retry in %ss", item.message_id, error, int(delay.total_seconds())
    )


def _fail(store: Store, item: OutboxItem, at: datetime, error: str, report: SendReport) -> None:
    with store.transaction() as conn:
        store.mark_failed(conn, item.id, at, error)
    report.failed += 1
    log.error("reply %s failed permanently: %s", item.message_id, error)
