"""One cycle of the worker: inbox → parse → decide → store → reply → send.

This is the only place that knows the order of the stages and the only place that catches a
failing mail: the mail is recorded with its error, retried on the next cycles, and after
`max_attempts` moved to the review folder — it never blocks the mail behind it.
The mailbox is touched (\\Seen, MOVE) only after the outcome and the reply are committed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Collection, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from mailbot.clock import Clock, utc_now
from mailbot.config import Config
from mailbot.decide.rules import EventState
from mailbot.inbox.imap import FetchedMail, ImapInbox, InboxError
from mailbot.models import ParsedMail
from mailbot.reading import Pending, ReadAhead, Reading, ReadInline
from mailbot.registrar import STATE_OF_ROUTE, MailPlace, Registrar
from mailbot.send.background import sending_alongside
from mailbot.send.smtp import SendReport, send_outbox
from mailbot.store.db import Store, process_holder

log = logging.getLogger("mailbot")


class MailboxBusy(InboxError):
    """Another live worker holds the mailbox; this cycle is skipped, not failed."""


@dataclass(frozen=True)
class MailResult:
    """What happened to one mail, for the log, the demo table and tests."""

    uid: int
    message_id: str | None
    arrival: datetime
    sender: str | None
    subject: str
    intent: str
    state: str
    outcome: str


MAILS_KEPT = 1000


@dataclass
class CycleReport:
    # The first MAILS_KEPT results, for the log, the demo table and tests; `handled` counts
    # them all. A rush of 20,000 mails must not hold 20,000 results in memory.
    mails: list[MailResult] = field(default_factory=list)
    handled: int = 0
    promoted: int = 0
    send: SendReport = field(default_factory=SendReport)

    def add(self, result: MailResult) -> None:
        self.handled += 1
        if len(self.mails) < MAILS_KEPT:
            self.mails.append(result)


class Pipeline:
    """Holds the configured adapters; `cycle()` runs one poll-and-send round."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock = utc_now,
        *,
        imap_ssl_context: ssl.SSLContext | None = None,
        smtp_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.imap_ssl_context = imap_ssl_context
        self.smtp_ssl_context = smtp_ssl_context
        # Set by the worker on SIGTERM: finish the batch in hand (up to batch_size mails, one
        # transaction), then stop; a batch read ahead is dropped, nothing of it committed.
        self.stop_requested = threading.Event()
        # Set while another worker holds the mailbox, so that is logged once, not every poll.
        self.busy_with: str | None = None
        self.registrar = Registrar(config, store, clock)
        self._seats: SeatsSeen | None = None  # the seats as the last committed batch left them
        self._send_lock = asyncio.Lock()

    def replace_config(self, config: Config) -> None:
        """Swap in a reloaded, already checked config for the next cycle."""
        self.config = config
        self.registrar.config = config

    async def cycle(self) -> CycleReport:
        """One cycle in the worker: the poll runs in a thread, so the loop keeps serving."""
        try:
            report = await asyncio.to_thread(self.poll_inbox)
        except InboxError as exc:
            await self._send_unless_busy(exc)
            raise
        report.send = await self.send()
        return report

    def cycle_here(self, read_ahead: ReadAhead | None = None) -> CycleReport:
        """One cycle in this thread, for `poll --once`: no event loop and no other thread
        exists while the poll runs, so its helper processes are forked (mailbot/helpers.py).
        `read_ahead`: a helper started before the poll's imports (`ReadAhead.early`), used
        for a backlog and ended otherwise."""
        try:
            report = self.poll_inbox(read_ahead)
        except InboxError as exc:
            asyncio.run(self._send_unless_busy(exc))
            raise
        report.send = asyncio.run(self.send())
        return report

    async def _send_unless_busy(self, problem: InboxError) -> None:
        # The mailbox is down, not the mail server: replies already queued still go out.
        if not isinstance(problem, MailboxBusy):
            await self.send()

    async def send(self) -> SendReport:
        # One sender at a time: the poll and the digest job both send, and two concurrent
        # passes over the outbox would hand the same reply to SMTP twice.
        async with self._send_lock:
            return await self._send()

    async def _send(self) -> SendReport:
        return await send_outbox(
            self.store,
            self.config.smtp,
            self.config.organiser.address,
            self.clock,
            self.smtp_ssl_context,
            hourly_cap=self.config.mailbot.max_replies_per_hour,
        )

    # --- inbox --------------------------------------------------------------------------

    @property
    def lease_name(self) -> str:
        return (
            f"mailbox:{self.config.imap.username}@{self.config.imap.host}/{self.config.imap.folder}"
        )

    def _hold_mailbox(self) -> None:
        """One worker per mailbox: a second one started by mistake waits instead of racing."""
        ttl = timedelta(seconds=max(300, 3 * self.config.mailbot.poll_seconds))
        with self.store.transaction() as conn:
            other = self.store.acquire_lease(
                conn, self.lease_name, process_holder(), self.clock(), ttl
            )
        if other is not None:
            raise MailboxBusy(
                f"another mailbot ({other}) is working on {self.config.imap.folder}; "
                "this one waits until it stops"
            )

    def release(self) -> None:
        """Give the mailbox up (on a clean stop) so another worker may start at once."""
        with self.store.transaction() as conn:
            self.store.release_lease(conn, self.lease_name, process_holder())

    def poll_inbox(self, read_ahead: ReadAhead | None = None) -> CycleReport:
        """`read_ahead` is the caller's to end as well (a failing mailbox never reaches it)."""
        report = CycleReport()
        imap = self.config.imap
        self._hold_mailbox()
        with ImapInbox(imap, self.imap_ssl_context) as inbox:
            with self.store.transaction() as conn:
                progress = self.store.progress(conn, imap.folder)
                report.promoted = len(self.registrar.promote_free_seats(conn))
                pending = self.store.pending_moves(conn, imap.folder, inbox.uidvalidity)
            if progress is not None and progress.uidvalidity != inbox.uidvalidity:
                log.warning(
                    "UIDVALIDITY of %s changed (%s -> %s): rescanning, deduplicating by Message-ID",
                    imap.folder,
                    progress.uidvalidity,
                    inbox.uidvalidity,
                )
            last_uid = (
                progress.last_uid if progress and progress.uidvalidity == inbox.uidvalidity else 0
            )
            try:
                self._move(inbox, [(r.id, r.uid, r.state) for r in pending])
            except InboxError as exc:
                # A move that keeps failing (quota, permissions) must not stop new mail.
                log.warning("could not move %d handled mails yet: %s", len(pending), exc)
            uids = inbox.new_uids(last_uid)
            too_big = inbox.larger_than(uids, imap.max_message_bytes)
            large = inbox.larger_than(uids, ALONE_BYTES) - too_big if len(uids) > 1 else set()
            batches = batches_of(uids, imap.batch_size, alone=large)
            helpers = self._helpers_for(len(batches))
            if read_ahead is not None and not helpers:
                read_ahead.close(wait=False)
                read_ahead = None
            with sending_alongside(self.config) if helpers else nullcontext():
                reader = read_ahead or (
                    ReadAhead(self.config) if helpers else ReadInline(self.config)
                )
                if isinstance(reader, ReadAhead) and reader.process is not None:
                    log.info(
                        "reading ahead in process %s (%s)",
                        reader.process.pid,
                        "forked with the poll" if reader is read_ahead else reader.start_method,
                    )
                try:
                    last_uid = self._handle_batches(
                        inbox, batches, too_big, reader, last_uid, report
                    )
                finally:
                    reader.close()
            if not uids:
                with self.store.transaction() as conn:
                    self.store.save_progress(
                        conn, imap.folder, inbox.uidvalidity, last_uid, self.clock()
                    )
        return report

    def _helpers_for(self, batches: int) -> bool:
        """A backlog of more than one batch (a rush) gets two helper processes: one reads the
        next batch while this one settles (reading.ReadAhead), one sends the replies while the
        backlog is still read (send/background.py). Python runs one thread at a time, so
        only processes use the other cores.

        Not with an injected clock or TLS context (tests, the demo): the helpers have
        neither, and would stamp real times next to a fixed one.
        """
        return (
            batches > 1
            and self.config.mailbot.parallel_backlog
            and self.clock is utc_now
            and self.smtp_ssl_context is None
        )

    def _handle_batches(
        self,
        inbox: ImapInbox,
        batches: Sequence[Sequence[int]],
        too_big: Collection[int],
        reader: ReadInline,
        last_uid: int,
        report: CycleReport,
    ) -> int:
        """Each batch is fetched and handed to the reader one step ahead of its settling, so
        with a read-ahead process the next batch is parsed while this one is settled.

        The last UID advances over a gap-free run of settled mails across the whole backlog,
        not per batch: once a batch ends short of a mail that failed (or that the server did
        not return), later batches are still settled and moved, but the last UID stays before
        that mail, so it is fetched and retried next cycle. A later batch that settled whole
        must not carry the last UID past it: the mail would never be tried again.
        """
        ahead: StartedBatch | None = None
        first = True
        held = False  # an earlier batch of this cycle left a mail unsettled
        backlog = frozenset(uid for batch in batches for uid in batch)
        for batch in [*batches, None]:
            started = None
            if batch is not None and not self.stop_requested.is_set():
                started = self._start_batch(inbox, batch, too_big, reader)
            if ahead is not None:
                if first and reader.reads_first_batch_elsewhere:
                    self._warm_up()  # instead of waiting idle for the helper's first batch
                first = False
                advanced = self._finish_batch(inbox, ahead, last_uid, report, backlog)
                if not held:
                    held = advanced != ahead.uids[-1]
                    last_uid = advanced
                self._hold_mailbox()  # renew: a long backlog must not let the lease lapse
                with self.store.transaction() as conn:
                    self.store.save_progress(
                        conn, self.config.imap.folder, inbox.uidvalidity, last_uid, self.clock()
                    )
            if self.stop_requested.is_set():
                break  # the batch read ahead is dropped: nothing of it was committed or moved
            ahead = started
        return last_uid

    def _warm_up(self) -> None:
        """Import jinja2 and icalendar, load the compiled templates and babel's data while the
        read-ahead helper reads the first batch, not on the way to the first fetch: the first
        replies leave sooner (bench/timeline.py).

        Only a speed-up: if it fails, the mails that need the broken part fail in their own
        savepoints as they always would, and say why there.
        """
        from mailbot.reply.samples import warm_up

        try:
            warm_up(self.config)
        except Exception as exc:  # the first mail that needs the broken part says so
            log.debug("warming up the replies failed: %s", exc)

    def _start_batch(
        self, inbox: ImapInbox, batch: Sequence[int], too_big: Collection[int], reader: ReadInline
    ) -> StartedBatch:
        fetched = [(m, True) for m in inbox.fetch_headers([u for u in batch if u in too_big])]
        fetched += [(m, False) for m in inbox.fetch([u for u in batch if u not in too_big])]
        folder = self.config.imap.folder
        with self.store.transaction() as conn:
            known = self.store.messages_by_uids(conn, folder, inbox.uidvalidity, list(batch))
        handled: list[tuple[int, Handled]] = []
        to_read: list[tuple[FetchedMail, bool]] = []
        rows: list[Any] = []
        # First come, first served: within a batch, in the order the server received them.
        for mail, oversized in sorted(fetched, key=lambda f: (f[0].arrival, f[0].uid)):
            row = known.get(mail.uid)
            if row is not None and row.state != "failed":
                handled.append((mail.uid, _settled_before(row)))
            else:
                to_read.append((mail, oversized))
                rows.append(row)
        return StartedBatch(batch, handled, to_read, rows, reader.submit(to_read))

    def _finish_batch(
        self,
        inbox: ImapInbox,
        started: StartedBatch,
        last_uid: int,
        report: CycleReport,
        backlog: frozenset[int],
    ) -> int:
        """Settle what the reader made of the batch, move it, and advance the last UID (as far
        as this batch goes; `_handle_batches` keeps it from passing an earlier gap)."""
        batch = started.uids
        settled: dict[int, bool] = dict.fromkeys(batch, False)
        work = [
            Prepared(mail, reading, row, oversized)
            for (mail, oversized), reading, row in zip(
                started.to_read, started.readings(), started.rows, strict=True
            )
        ]
        handled = [*started.handled, *self._settle_batch(work, inbox.uidvalidity, backlog)]
        moves = []
        for uid, outcome in handled:
            settled[uid] = outcome.state != "failed"
            if outcome.move:
                moves.append((outcome.row_id, uid, outcome.state))
            if outcome.result is not None:
                report.add(outcome.result)
        self._move(inbox, moves)
        # Advance only over a gap-free run of settled UIDs: a mail that failed (or that the
        # server did not return) is fetched again next cycle.
        for uid in batch:
            if not settled[uid]:
                break
            last_uid = uid
        return last_uid

    def _move(self, inbox: ImapInbox, rows: Iterable[tuple[int, int, str]]) -> None:
        by_state: dict[str, list[tuple[int, int]]] = {"done": [], "review": []}
        for row_id, uid, state in rows:
            by_state[state].append((row_id, uid))
        targets = {
            "done": self.config.imap.processed_folder,
            "review": self.config.imap.review_folder,
        }
        for state, items in by_state.items():
            if not items:
                continue
            uids = [uid for _, uid in items]
            if state == "done":
                inbox.mark_seen(uids)  # ours and answered: read; review mail stays unread
            inbox.move(uids, targets[state])
            with self.store.transaction() as conn:
                self.store.mark_moved(conn, [row_id for row_id, _ in items], self.clock())

    # --- one mail -----------------------------------------------------------------------

    def _settle_batch(
        self, work: list[Prepared], uidvalidity: int, backlog: frozenset[int]
    ) -> list[tuple[int, Handled]]:
        """Settle a batch in one write transaction, each mail in a savepoint of its own.

        One transaction per batch instead of per mail; a mail that fails rolls back only its
        savepoint and is recorded as failed, so it never blocks the others. Nothing leaves the
        inbox before this transaction has committed.

        The seats are read once per batch, and not even that when nothing but this pipeline
        changed them since its last batch (`Store.seat_changes`): reading them all again per
        batch made a rush of N mails cost O(N²).

        `backlog`: the UIDs of this cycle, `work`'s among them (`_settle_one`).
        """
        if not work:
            return []
        results: list[tuple[int, Handled, Prepared]] = []
        # Taken out while the batch runs: only a committed batch puts seats back.
        cached, self._seats = self._seats, None
        with self.store.transaction() as conn:
            changes = self.store.seat_changes(conn)
            if cached is not None and cached.fits(changes, self.config):
                states = cached.states
            else:
                states = self.store.event_states(conn, self.config)
            rows = self.store.messages_by_uids(
                conn, self.config.imap.folder, uidvalidity, [w.mail.uid for w in work]
            )
            for item in work:
                row = rows.get(item.mail.uid)
                if row is not None and row.state != "failed":
                    # A second worker settled it meanwhile (we hold the write lock now).
                    results.append((item.mail.uid, _settled_before(row), item))
                    continue
                try:
                    with self.store.savepoint(conn):
                        outcome = self._settle_one(conn, item, row, uidvalidity, states, backlog)
                except Exception as exc:  # the one place a failing mail is caught
                    # The failed mail may have changed the seats before it failed.
                    states = self.store.event_states(conn, self.config)
                    with self.store.savepoint(conn):
                        outcome = self._record_failure(conn, item, row, uidvalidity, exc)
                results.append((item.mail.uid, outcome, item))
            changes = self.store.seat_changes(conn)
        self._seats = SeatsSeen(states, changes, self.config)
        for _uid, outcome, item in results:
            self._log(item, outcome)
        return [(uid, outcome) for uid, outcome, _item in results]

    def _settle_one(
        self,
        conn: Connection,
        item: Prepared,
        row: Any,
        uidvalidity: int,
        states: dict[str, EventState],
        backlog: frozenset[int],
    ) -> Handled:
        """`backlog`: the UIDs this cycle settles; a failing first copy among them is tried
        again in this cycle, so a copy of it waits (`_wait_for_twin`) rather than take over."""
        folder = self.config.imap.folder
        mail, parsed = item.mail, item.parsed
        if row is None and (twin := self.store.message_by_key(conn, item.key)) is not None:
            if twin.state != "failed":
                return self._known_elsewhere(conn, twin, mail, uidvalidity)
            if twin.folder == folder and twin.uidvalidity == uidvalidity and twin.uid in backlog:
                return self._wait_for_twin(twin, mail)
            # The first copy is still being retried, but not in this cycle: after a UIDVALIDITY
            # change it has a new UID, or it left the inbox (a human deleted or moved it).
            # This copy carries on its retries at its own UID.
            self._take_over(conn, twin, mail.uid, uidvalidity)
            row = self.store.message_by_uid(conn, folder, uidvalidity, mail.uid)
        if item.oversized:  # after the copies: two copies of one large mail share the key
            return self._settle_oversized(conn, item, row, uidvalidity)
        place = MailPlace(folder, uidvalidity, mail.uid, item.key)
        row_id, decision = self.registrar.settle_mail(
            conn,
            parsed,
            item.arrival,
            place,
            row,
            forwarded_by=item.forwarded_by,
            raw=mail.raw,
            states=states,
        )
        state = STATE_OF_ROUTE[decision.route]
        return Handled(row_id, state, self._result(mail, parsed, state, decision.summary))

    def _log(self, item: Prepared, outcome: Handled) -> None:
        if outcome.result is None or outcome.state == "failed":
            return
        log.info(
            "mail uid=%s id=%s arrival=%s intent=%s -> %s: %s%s",
            item.mail.uid,
            item.parsed.headers.message_id,
            item.arrival.isoformat(),
            item.parsed.intent.value,
            outcome.state,
            outcome.result.outcome,
            f" (forwarded by {item.forwarded_by})" if item.forwarded_by else "",
        )

    def _settle_oversized(
        self, conn: Connection, item: Prepared, row: Any, uidvalidity: int
    ) -> Handled:
        """A mail over max_message_bytes: recorded from its header, to review, never downloaded.

        `row`: the mail's row from a failed attempt (its own, or a copy's it took over), which
        is updated: a second row with the same UID or dedupe key cannot be written.
        """
        mail, parsed = item.mail, item.parsed
        reason = (
            f"too large to read: {mail.size / 1e6:.1f} MB, the limit is "
            f"{self.config.imap.max_message_bytes / 1e6:.1f} MB (imap.max_message_bytes)"
        )
        values = {"state": "review", "outcome": "not read", "reason": reason}
        if row is None:
            row_id = self._record_new(conn, item, uidvalidity, **values)
        else:
            row_id = row.id
            self.store.update_message(conn, row_id, self.clock(), **values)
        log.warning("mail uid=%s id=%s: %s; to review", mail.uid, parsed.headers.message_id, reason)
        return Handled(row_id, "review", self._result(mail, parsed, "review", reason))

    def _record_new(self, conn: Connection, item: Prepared, uidvalidity: int, **values: Any) -> int:
        """A first row for a mail that is not settled the ordinary way (too large, failing)."""
        headers = item.parsed.headers
        return self.store.record_message(
            conn,
            self.clock(),
            folder=self.config.imap.folder,
            uidvalidity=uidvalidity,
            uid=item.mail.uid,
            dedupe_key=item.key,
            message_id=headers.message_id,
            arrival=item.mail.arrival,
            sender=headers.from_address,
            subject=headers.subject[:2000],
            **values,
        )

    def _record_failure(
        self, conn: Connection, item: Prepared, row: Any, uidvalidity: int, exc: Exception
    ) -> Handled:
        mail, parsed = item.mail, item.parsed
        twin = self.store.message_by_key(conn, item.key) if row is None else None
        if twin is not None and twin.state == "failed":
            # A copy that took over a failing first copy's retries (`_settle_one`) and failed
            # too: the savepoint undid the move, so the count goes on at this copy's UID
            # (a second row with the same dedupe key cannot be written).
            self._take_over(conn, twin, mail.uid, uidvalidity)
            row = twin
        attempts = (row.attempts if row is not None else 0) + 1
        quarantine = attempts >= self.config.mailbot.max_attempts
        state = "review" if quarantine else "failed"
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        reason = f"failed {attempts} times, last: {error}" if quarantine else error
        now = self.clock()
        if row is None:
            row_id = self._record_new(
                conn,
                item,
                uidvalidity,
                intent=parsed.intent.value,
                state=state,
                reason=reason,
                error=error,
                attempts=attempts,
            )
        else:
            row_id = row.id
            self.store.update_message(
                conn, row_id, now, state=state, reason=reason, error=error, attempts=attempts
            )
        log.error(
            "mail uid=%s id=%s failed (attempt %d of %d): %s",
            mail.uid,
            parsed.headers.message_id,
            attempts,
            self.config.mailbot.max_attempts,
            error,
            exc_info=exc if not quarantine else None,
        )
        return Handled(row_id, state, self._result(mail, parsed, state, reason))

    def _known_elsewhere(
        self, conn: Connection, twin: Any, mail: FetchedMail, uidvalidity: int
    ) -> Handled:
        """The same mail seen before under another UID (UIDVALIDITY change or a second copy),
        and settled there (done, review or ignored): this copy goes where that one went.

        A second copy is never answered again, and it is placed like the first: mail that is
        not ours (ignored) stays in the inbox untouched, unread; a copy of a mail in review
        goes to the review folder, unread, but is not a second item for the organisers (it is
        recorded as resolved with its first copy); a copy of a handled mail is filed as read.
        Two copies are common: the other addresses (information@ …) deliver to this mailbox,
        and a colleague's mail to both must not be filed away because it came twice.
        """
        now = self.clock()
        if twin.uidvalidity != uidvalidity or twin.folder != self.config.imap.folder:
            self.store.relocate_message(
                conn, twin.id, self.config.imap.folder, uidvalidity, mail.uid, now
            )
            log.info(
                "mail uid=%s id=%s already handled before the rescan", mail.uid, twin.message_id
            )
            return Handled(twin.id, twin.state, None, owes_move=twin.state in ("done", "review"))
        state = twin.state
        resolved: dict[str, Any] = {}
        if state == "review":
            resolved = {"resolved_at": now, "resolution": f"second copy of mail {twin.id}"}
        row_id = self.store.record_message(
            conn,
            now,
            folder=self.config.imap.folder,
            uidvalidity=uidvalidity,
            uid=mail.uid,
            dedupe_key=f"{twin.dedupe_key}#{uidvalidity}:{mail.uid}",
            message_id=twin.message_id,
            arrival=mail.arrival,
            sender=twin.sender,
            subject=twin.subject,
            intent=twin.intent,
            state=state,
            outcome=f"second copy of mail uid {twin.uid}",
            reason="duplicate delivery",
            **resolved,
        )
        log.info(
            "mail uid=%s id=%s is a second copy of uid %s: no new answer, %s like it",
            mail.uid,
            twin.message_id,
            twin.uid,
            state,
        )
        return Handled(row_id, state)

    @staticmethod
    def _wait_for_twin(twin: Any, mail: FetchedMail) -> Handled:
        """A second copy of a mail that is retried in this cycle: settled once that one is.

        Nothing is recorded for it, so it stays in the inbox untouched and the last UID does
        not pass it: the next cycle fetches it again and it follows its first copy, whatever
        that copy's retries (or their quarantine in review) come to.
        """
        log.info(
            "mail uid=%s id=%s is a second copy of uid %s, which failed: waits for it",
            mail.uid,
            twin.message_id,
            twin.uid,
        )
        return Handled(twin.id, "failed")

    def _take_over(self, conn: Connection, twin: Any, uid: int, uidvalidity: int) -> None:
        """A failing mail's retries go on at this copy's UID (the first copy's is gone, or
        changed with the UIDVALIDITY)."""
        self.store.relocate_message(
            conn, twin.id, self.config.imap.folder, uidvalidity, uid, self.clock()
        )

    @staticmethod
    def _result(mail: FetchedMail, parsed: ParsedMail, state: str, outcome: str) -> MailResult:
        return MailResult(
            uid=mail.uid,
            message_id=parsed.headers.message_id,
            arrival=mail.arrival,
            sender=parsed.headers.from_address,
            subject=parsed.headers.subject,
            intent=parsed.intent.value,
            state=state,
            outcome=outcome,
        )


# A mail this large (an attachment, mostly) is fetched in a batch of its own.
ALONE_BYTES = 1 << 20


def batches_of(
    uids: Sequence[int], size: int, alone: Collection[int] = frozenset()
) -> list[Sequence[int]]:
    """The new mails in batches of `size`, but in a backlog the first two of a fifth and a
    half of it (at least one mail): 10, 25, 50, 50, … for the default 50. The mails in
    `alone` (over ALONE_BYTES) form batches of one, in their place in the order.

    A batch is held in memory whole, twice while the read-ahead has the next one, so its
    bytes are bounded, not only its count: fifty registrations with a 20 MB programme
    attached each would be a gigabyte. With the large ones alone, a batch holds at most
    `size` mails under a MiB each, plus one mail up to `max_message_bytes` at a time.

    The replies of a batch reach the sender when its transaction commits, and in a rush the
    sender, one SMTP round trip after the other, is the longest chain of the run: it still
    has about 60 replies to send when the last batch is committed (bench/timeline.py), so
    the sooner it starts, the sooner it ends. A first batch of 10 is settled and committed
    in a fifth of the time of one of 50, and the second is short as well, so that the
    sender has not sent the first before the second comes. A backlog that fits one batch
    stays one.
    """
    if len(uids) <= size:
        batches = [uids] if uids else []
    else:
        first, second = max(1, size // 5), max(1, size // 2)
        batches = [uids[:first], uids[first : first + second]]
        start = first + second
        batches += [uids[i : i + size] for i in range(start, len(uids), size)]
    return _each_alone(batches, alone) if alone else batches


def _each_alone(batches: list[Sequence[int]], alone: Collection[int]) -> list[Sequence[int]]:
    """`batches` with every uid of `alone` cut out into a batch of its own, order kept."""
    out: list[Sequence[int]] = []
    for batch in batches:
        run: list[int] = []
        for uid in batch:
            if uid in alone:
                out += [run, [uid]] if run else [[uid]]
                run = []
            else:
                run.append(uid)
        if run:
            out.append(run)
    return out


@dataclass(frozen=True)
class Prepared:
    """A fetched mail, read, with what the batch transaction needs to settle it."""

    mail: FetchedMail
    reading: Reading
    row: Any
    oversized: bool

    @property
    def parsed(self) -> ParsedMail:
        return self.reading.parsed

    @property
    def key(self) -> str:
        return self.reading.key

    @property
    def arrival(self) -> datetime:
        return self.reading.arrival

    @property
    def forwarded_by(self) -> str | None:
        return self.reading.forwarded_by


@dataclass(frozen=True)
class SeatsSeen:
    """The seats after this pipeline's last committed batch, and the change count then."""

    states: dict[str, EventState]
    changes: int | None
    config: Config

    def fits(self, changes: int | None, config: Config) -> bool:
        """Still true: nobody else changed a seat since, and the config is the same one."""
        return changes is not None and changes == self.changes and config is self.config


@dataclass(frozen=True)
class StartedBatch:
    """A batch fetched and handed to the reader, not yet settled."""

    uids: Sequence[int]
    handled: list[tuple[int, Handled]]  # already settled in an earlier cycle
    to_read: list[tuple[FetchedMail, bool]]  # (mail, oversized), in arrival order
    rows: list[Any]  # their rows from a failed earlier attempt, or None
    readings: Pending


@dataclass(frozen=True)
class Handled:
    """What became of one fetched mail in this cycle."""

    row_id: int
    state: str  # done, review, ignored or failed (also: a copy waiting for its failed twin)
    result: MailResult | None = None
    owes_move: bool | None = None  # None: derived from the state

    @property
    def move(self) -> bool:
        if self.owes_move is not None:
            return self.owes_move
        return self.state in ("done", "review")


def _settled_before(row: Any) -> Handled:
    """A mail with a committed outcome: only a move may still be owed (after a crash)."""
    return Handled(
        row.id, row.state, None, owes_move=not row.moved and row.state in ("done", "review")
    )
