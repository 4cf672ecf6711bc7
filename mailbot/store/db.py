"""The database adapter: connections, the per-mail transaction, and the queries the worker needs.

All writes for one mail — its outcome, the registrations it changes and its reply in the
outbox — happen in one transaction, so a crash leaves either all of them or none.
On SQLite every write transaction starts with BEGIN IMMEDIATE: a second worker on the same
file waits for the lock instead of both reading the same free seat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, OperationalError

from mailbot.config import Config
from mailbot.decide.rules import Decision, EventState, Seat, Status
from mailbot.models import ParsedMail, Participant
from mailbot.store.driver import DriverStatements
from mailbot.store.schema import (
    SCHEMA_VERSION,
    change_counters,
    health,
    leases,
    mailbox_state,
    messages,
    metadata,
    outbox,
    outbox_bodies,
    participants,
    registrations,
    reply_log,
    schema_info,
)

log = logging.getLogger(__name__)

# Indexes earlier versions made and this one no longer reads: dropped at start, because
# every insert would keep paying for them. (ix_outbox_recent_recipients served the loop
# brake before the reply_log table did.)
RETIRED_INDEXES = ("ix_outbox_recent_recipients",)
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's write lock
# Mail to the organisers, not to participants: the per-address loop brake does not count it.
UNCOUNTED_PURPOSES = ("digest", "forward")


# The statements a rush runs for every mail, built once. Building a Core statement costs
# about 0.2 ms (construct, then derive its cache key), executing a prebuilt one with bound
# values about a quarter of that, and a mail runs a dozen (bench/rush.py). An UPDATE without
# .values() takes its SET columns from the parameters it is executed with. On SQLite they run
# on the driver's cursor (store/driver.py): `_insert`, `_change` and `_first` below.
_SEAT_CHANGES = select(change_counters.c.value).where(change_counters.c.name == "seats")
_MESSAGE_BY_KEY = select(messages).where(messages.c.dedupe_key == bindparam("b_key"))
_MESSAGE_ID_BY_KEY = select(messages.c.id).where(messages.c.dedupe_key == bindparam("b_key"))
_INSERT_MESSAGE = insert(messages)
_UPDATE_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id"))
_PARTICIPANT_BY_EMAIL = select(
    participants.c.id, participants.c.name, participants.c.organisation
).where(participants.c.email == bindparam("b_email"))
_INSERT_PARTICIPANT = insert(participants)
_UPDATE_PARTICIPANT = update(participants).where(participants.c.id == bindparam("b_id"))
_REGISTRATION_ID = select(registrations.c.id).where(
    registrations.c.participant_id == bindparam("b_person"),
    registrations.c.event_id == bindparam("b_event"),
)
_INSERT_REGISTRATION = insert(registrations)
_UPDATE_REGISTRATION = update(registrations).where(registrations.c.id == bindparam("b_id"))
_OUTBOX_KEY = select(outbox.c.id).where(outbox.c.key == bindparam("b_key"))
_INSERT_OUTBOX = insert(outbox)
_INSERT_OUTBOX_BODY = insert(outbox_bodies)
_INSERT_REPLY_LOG = insert(reply_log)
_REPLIES_TO = (
    select(func.count())
    .select_from(reply_log)
    .where(
        reply_log.c.address_hash == bindparam("b_hash"),
        reply_log.c.created_at >= bindparam("b_since"),
    )
)
_MARK_SENT = (
    update(outbox)
    .where(outbox.c.id == bindparam("b_id"), outbox.c.sent_at.is_(None))
    .values(
        sent_at=bindparam("b_now"),
        attempts=outbox.c.attempts + 1,
        last_error=None,
        claimed_by=None,
        claimed_until=None,
    )
)


class StoreError(Exception):
    """The database cannot be used as it is (wrong schema version, unreachable)."""


class StoreBusy(Exception):
    """Another process holds the write lock (only from `transaction(wait=False)`)."""


@dataclass(frozen=True)
class MailboxProgress:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class OutboxItem:
    id: int
    recipients: list[str]
    raw: bytes
    attempts: int
    message_id: str


def make_engine(url: str) -> Engine:
    """An engine with SQLite made safe for a worker: WAL, a busy timeout, immediate write locks."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints, not at every commit: a crash of mailbot
            # loses nothing committed; only a power cut may lose the last transactions.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    """Thin wrapper around the engine; every method takes the connection of the caller's transaction."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        sqlite = self.engine.dialect.name == "sqlite"
        self._driver = DriverStatements(self.engine.dialect) if sqlite else None
        metadata.create_all(self.engine)
        with self.transaction() as conn:
            for name in RETIRED_INDEXES:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            if sqlite:
                self._count_seat_changes(conn)
            versions = [row.version for row in conn.execute(select(schema_info))]
            if versions and max(versions) > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {max(versions)} is newer than the {SCHEMA_VERSION} "
                    "this mailbot knows; use the matching mailbot version"
                )
            self._move_reply_bytes(conn)
            self._drop_orphan_bodies(conn)
            self._fill_reply_log(conn)
            if not versions or max(versions) < SCHEMA_VERSION:
                conn.execute(insert(schema_info).values(version=SCHEMA_VERSION))

    @staticmethod
    def _move_reply_bytes(conn: Connection) -> None:
        """A database from before schema version 2 keeps each reply's bytes in its outbox
        row: move them to `outbox_bodies`, in the transaction that stamps the new version
        (all of it or nothing).

        Decided by the table itself, not by the version number: a database old enough to
        have no version at all has the old outbox too.
        """

        def old_layout() -> bool:
            return "raw" in {c["name"] for c in inspect(conn).get_columns("outbox")}

        if not old_layout():
            return
        dialect = conn.dialect.name
        if dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise StoreError(
                f"this database needs an upgrade that SQLite {sqlite3.sqlite_version} cannot "
                "do (ALTER TABLE … DROP COLUMN came with 3.35); run mailbot with a Python "
                "whose sqlite3 is 3.35 or newer"
            )
        if dialect == "postgresql":  # SQLite's BEGIN IMMEDIATE already keeps others out
            conn.execute(text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))
            if not old_layout():  # another process upgraded it meanwhile
                return
        try:
            moved = conn.execute(
                text("INSERT INTO outbox_bodies (outbox_id, raw) SELECT id, raw FROM outbox")
            ).rowcount
            conn.execute(text("ALTER TABLE outbox DROP COLUMN raw"))
        except DBAPIError as exc:
            raise StoreError(
                f"upgrading the database to schema version 2 failed, nothing was changed: "
                f"{exc.orig}; stop every mailbot process and try again, or restore a backup"
            ) from exc
        log.info("database upgraded to schema version 2: %d replies' bytes moved", moved)

    @staticmethod
    def _drop_orphan_bodies(conn: Connection) -> None:
        """Reply bytes whose outbox row is gone: deleted by hand with foreign keys off (the
        sqlite3 shell's default), so the cascade did not run. They would be personal data
        nobody can see any more, and a new reply that gets the freed id could not be
        queued."""
        conn.execute(
            delete(outbox_bodies).where(outbox_bodies.c.outbox_id.not_in(select(outbox.c.id)))
        )

    @staticmethod
    def _fill_reply_log(conn: Connection) -> None:
        """A database from before reply_log: count the last two days' replies into it, so the
        loop brake is not blind for a day after the upgrade."""
        if conn.execute(select(reply_log.c.id).limit(1)).first() is not None:
            return
        since = datetime.now(UTC) - timedelta(days=2)
        recent = conn.execute(
            select(outbox.c.recipients, outbox.c.created_at).where(
                outbox.c.created_at >= since, outbox.c.purpose.not_in(UNCOUNTED_PURPOSES)
            )
        ).all()
        rows = [
            {"address_hash": reply_log_hash(a), "created_at": r.created_at}
            for r in recent
            for a in json.loads(r.recipients)
        ]
        if rows:
            conn.execute(_INSERT_REPLY_LOG, rows)

    @staticmethod
    def _count_seat_changes(conn: Connection) -> None:
        conn.execute(
            text("INSERT OR IGNORE INTO change_counters (name, value) VALUES ('seats', 0)")
        )
        for table in ("registrations", "participants"):
            for action in ("INSERT", "UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_{action.lower()}_counts "
                        f"AFTER {action} ON {table} BEGIN UPDATE change_counters "
                        "SET value = value + 1 WHERE name = 'seats'; END"
                    )
                )

    def seat_changes(self, conn: Connection) -> int | None:
        """A number that changes whenever seats or participants do (None: not counted here,
        on databases other than SQLite; read the seats afresh)."""
        if self.engine.dialect.name != "sqlite":
            return None
        row = self._first(conn, _SEAT_CHANGES, {})
        return None if row is None else int(row[0])

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Connection]:
        """One transaction. `wait=False`: raise `StoreBusy` at once when another process holds
        the write lock, instead of waiting for it (SQLite; other databases always wait)."""
        if wait or self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")  # on the driver: no transaction begins
            try:
                with conn.begin():
                    yield conn
            except OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StoreBusy(str(exc)) from exc
                raise
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def savepoint(self, conn: Connection) -> Iterator[None]:
        """What one failing mail rolls back, inside the batch's transaction.

        On SQLite the SAVEPOINT goes to the driver directly (SQLAlchemy's nested transaction
        object cost more than the two statements); elsewhere it is `begin_nested`.
        """
        if self._driver is None:
            with conn.begin_nested():
                yield
            return
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("SAVEPOINT one_mail")
        try:
            yield
        except BaseException:
            driver.execute("ROLLBACK TO SAVEPOINT one_mail")
            raise
        finally:
            driver.execute("RELEASE SAVEPOINT one_mail")

    # --- the statements of every mail: on SQLite's cursor where the store has one --------

    def _insert(self, conn: Connection, statement: Any, values: dict[str, Any]) -> int:
        """Run an INSERT; the new row's id."""
        if self._driver is not None:
            return self._driver.insert(conn, statement, values)
        return int(conn.execute(statement, values).inserted_primary_key[0])  # type: ignore[index]

    def _change(self, conn: Connection, statement: Any, values: dict[str, Any]) -> int:
        """Run an UPDATE; how many rows it changed."""
        if self._driver is not None:
            return self._driver.change(conn, statement, values)
        return int(conn.execute(statement, values).rowcount)

    def _change_many(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> int:
        """Run an UPDATE once per row of values, in one call; how many rows it changed."""
        if self._driver is not None:
            return self._driver.change_many(conn, statement, rows)
        return int(conn.execute(statement, rows).rowcount) if rows else 0

    def _first(self, conn: Connection, statement: Any, values: dict[str, Any]) -> Any:
        """The first row of a SELECT of integer and text columns (read by index), or None."""
        if self._driver is not None:
            return self._driver.first(conn, statement, values)
        return conn.execute(statement, values).first()

    # --- mailbox progress -------------------------------------------------------------

    def progress(self, conn: Connection, folder: str) -> MailboxProgress | None:
        row = conn.execute(select(mailbox_state).where(mailbox_state.c.folder == folder)).first()
        return MailboxProgress(row.uidvalidity, row.last_uid) if row else None

    def save_progress(
        self, conn: Connection, folder: str, uidvalidity: int, last_uid: int, now: datetime
    ) -> None:
        values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "last_poll_at": now}
        done = conn.execute(
            update(mailbox_state).where(mailbox_state.c.folder == folder).values(**values)
        )
        if done.rowcount == 0:
            conn.execute(insert(mailbox_state).values(folder=folder, **values))

    # --- messages -----------------------------------------------------------------------

    def message_by_uid(
        self, conn: Connection, folder: str, uidvalidity: int, uid: int
    ) -> Row[Any] | None:
        return conn.execute(
            select(messages).where(
                messages.c.folder == folder,
                messages.c.uidvalidity == uidvalidity,
                messages.c.uid == uid,
            )
        ).first()

    def messages_by_uids(
        self, conn: Connection, folder: str, uidvalidity: int, uids: list[int]
    ) -> dict[int, Row[Any]]:
        """The known mails of a batch in one query (instead of one per mail)."""
        if not uids:
            return {}
        rows = conn.execute(
            select(messages).where(
                messages.c.folder == folder,
                messages.c.uidvalidity == uidvalidity,
                messages.c.uid.in_(uids),
            )
        )
        return {int(r.uid): r for r in rows}

    def message_by_key(self, conn: Connection, dedupe_key: str) -> Row[Any] | None:
        # Asked for every new mail and nearly always absent: the cheap question first.
        if self._first(conn, _MESSAGE_ID_BY_KEY, {"b_key": dedupe_key}) is None:
            return None
        return conn.execute(_MESSAGE_BY_KEY, {"b_key": dedupe_key}).first()

    def relocate_message(
        self, conn: Connection, row_id: int, folder: str, uidvalidity: int, uid: int, now: datetime
    ) -> None:
        """After a UIDVALIDITY change the same mail has a new UID: remember where it is now."""
        conn.execute(
            update(messages)
            .where(messages.c.id == row_id)
            .values(folder=folder, uidvalidity=uidvalidity, uid=uid, updated_at=now)
        )

    def record_message(self, conn: Connection, now: datetime, **values: Any) -> int:
        values.setdefault("attempts", 1)
        return self._insert(
            conn, _INSERT_MESSAGE, {"created_at": now, "updated_at": now, "moved": False, **values}
        )

    def update_message(self, conn: Connection, row_id: int, now: datetime, **values: Any) -> None:
        self._change(conn, _UPDATE_MESSAGE, {"b_id": row_id, "updated_at": now, **values})

    def pending_moves(self, conn: Connection, folder: str, uidvalidity: int) -> list[Row[Any]]:
        """Mail whose outcome is committed but which a crash left in the inbox."""
        return list(
            conn.execute(
                select(messages.c.id, messages.c.uid, messages.c.state).where(
                    messages.c.folder == folder,
                    messages.c.uidvalidity == uidvalidity,
                    messages.c.moved.is_(False),
                    messages.c.state.in_(("done", "review")),
                )
            )
        )

    def mark_moved(self, conn: Connection, row_ids: list[int], now: datetime) -> None:
        if row_ids:
            conn.execute(
                update(messages)
                .where(messages.c.id.in_(row_ids))
                .values(moved=True, updated_at=now)
            )

    # --- registrations ------------------------------------------------------------------

    def event_states(self, conn: Connection, config: Config) -> dict[str, EventState]:
        states = {e.id: EventState(e) for e in config.events}
        rows = conn.execute(
            select(
                participants.c.email,
                registrations.c.event_id,
                registrations.c.status,
                registrations.c.arrival,
                registrations.c.id,
            ).join(participants, participants.c.id == registrations.c.participant_id)
        )
        for row in rows:
            if row.event_id in states:
                states[row.event_id].put(Seat(row.email, Status(row.status), row.arrival, row.id))
        return states

    def upsert_participant(
        self, conn: Connection, person: Participant, language: str, now: datetime
    ) -> int:
        row = self._first(conn, _PARTICIPANT_BY_EMAIL, {"b_email": person.email})
        if row is None:
            return self._insert(
                conn,
                _INSERT_PARTICIPANT,
                {
                    "email": person.email,
                    "name": person.name,
                    "organisation": person.organisation,
                    "language": language,
                    "created_at": now,
                },
            )
        row_id, name, organisation = row
        changes = {
            "name": person.name or name,
            "organisation": person.organisation or organisation,
            "language": language,
        }
        self._change(conn, _UPDATE_PARTICIPANT, {"b_id": row_id, **changes})
        return int(row_id)

    def apply_decision(
        self,
        conn: Connection,
        decision: Decision,
        parsed: ParsedMail,
        states: dict[str, EventState],
        message_row: int,
        now: datetime,
    ) -> None:
        """Write the statuses the rules chose, and the person's details from the mail."""
        for outcome in decision.outcomes:
            if outcome.status is None:
                continue
            person_id = self.upsert_participant(conn, outcome.participant, parsed.language, now)
            seat = states[outcome.event_id].seats[outcome.participant.email]
            details = {
                "lunch": parsed.lunch,
                "role": parsed.role.value if parsed.role else None,
                "notes": parsed.notes,
            }
            details = {k: v for k, v in details.items() if v is not None}
            row_id = self._write_registration(
                conn, person_id, outcome.event_id, seat, message_row, now, details
            )
            if seat.seq != row_id:
                # The row id is the tie-break a fresh read of the seats uses (event_states),
                # so the seats kept for the next batch must order people the same way.
                states[outcome.event_id].put(replace(seat, seq=row_id))
        for promotion in decision.promotions:
            self.set_status(conn, promotion.email, promotion.event_id, Status.CONFIRMED, now)

    def _write_registration(
        self,
        conn: Connection,
        person_id: int,
        event_id: str,
        seat: Seat,
        message_row: int | None,
        now: datetime,
        details: dict[str, Any],
    ) -> int:
        """Insert or update the person's row for the event; returns its id."""
        existing = self._first(conn, _REGISTRATION_ID, {"b_person": person_id, "b_event": event_id})
        values = {
            "status": seat.status.value,
            "arrival": seat.arrival,
            "updated_at": now,
            **details,
        }
        if existing is None:
            return self._insert(
                conn,
                _INSERT_REGISTRATION,
                {
                    "participant_id": person_id,
                    "event_id": event_id,
                    "message_row": message_row,
                    "created_at": now,
                    **values,
                },
            )
        if message_row is not None:
            values["message_row"] = message_row
        self._change(conn, _UPDATE_REGISTRATION, {"b_id": existing[0], **values})
        return int(existing[0])

    def set_status(
        self, conn: Connection, email: str, event_id: str, status: Status, now: datetime
    ) -> None:
        person = select(participants.c.id).where(participants.c.email == email).scalar_subquery()
        conn.execute(
            update(registrations)
            .where(registrations.c.participant_id == person, registrations.c.event_id == event_id)
            .values(status=status.value, updated_at=now)
        )

    def mark_bounced(self, conn: Connection, addresses: list[str], now: datetime) -> int:
        """Remember that mail to these participants bounced; returns how many were ours."""
        if not addresses:
            return 0
        result = conn.execute(
            update(participants)
            .where(participants.c.email.in_([a.lower() for a in addresses]))
            .values(bounced_at=now)
        )
        return int(result.rowcount or 0)

    def participant(self, conn: Connection, email: str) -> Row[Any] | None:
        return conn.execute(select(participants).where(participants.c.email == email)).first()

    def registration_row(self, conn: Connection, email: str, event_id: str) -> Row[Any] | None:
        return conn.execute(
            select(registrations)
            .join(participants, participants.c.id == registrations.c.participant_id)
            .where(participants.c.email == email, registrations.c.event_id == event_id)
        ).first()

    def counts(self, conn: Connection) -> dict[tuple[str, str], int]:
        rows = conn.execute(
            select(registrations.c.event_id, registrations.c.status, func.count()).group_by(
                registrations.c.event_id, registrations.c.status
            )
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    # --- outbox -------------------------------------------------------------------------

    def enqueue(
        self,
        conn: Connection,
        *,
        key: str,
        message_row: int | None,
        purpose: str,
        recipients: list[str],
        message_id: str,
        raw: bytes,
        now: datetime,
    ) -> bool:
        """Queue a reply unless one with the same key exists; True when it was queued."""
        if self._first(conn, _OUTBOX_KEY, {"b_key": key}) is not None:
            return False
        outbox_id = self._insert(
            conn,
            _INSERT_OUTBOX,
            {
                "key": key,
                "message_row": message_row,
                "purpose": purpose,
                "recipients": json.dumps(recipients),
                "message_id": message_id,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            },
        )
        self._insert(conn, _INSERT_OUTBOX_BODY, {"outbox_id": outbox_id, "raw": raw})
        if purpose not in UNCOUNTED_PURPOSES:
            for address in recipients:
                values = {"address_hash": reply_log_hash(address), "created_at": now}
                self._insert(conn, _INSERT_REPLY_LOG, values)
        return True

    def claim_due(
        self,
        conn: Connection,
        now: datetime,
        holder: str,
        lease: timedelta = timedelta(minutes=10),
        limit: int = 500,
        holding: Collection[int] = (),
    ) -> list[OutboxItem]:
        """Due replies, claimed for `holder` so no other sender takes them meanwhile.

        A claim runs out after `lease`, or at once when its holder was a process on this
        machine that no longer exists (killed mid-send): at least once, never lost.
        `holding`: replies the holder claimed before and has not sent yet, left out (a sender
        that claims the next replies before it has sent the last ones).
        """
        conditions = [
            outbox.c.sent_at.is_(None),
            outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= now,
        ]
        if holding:
            conditions.append(outbox.c.id.not_in(list(holding)))
        rows = conn.execute(
            select(
                outbox.c.id,
                outbox.c.recipients,
                outbox.c.attempts,
                outbox.c.message_id,
                outbox.c.claimed_by,
                outbox.c.claimed_until,
            )
            .where(*conditions)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        free = [
            r
            for r in rows
            if r.claimed_until is None
            or r.claimed_until <= now
            or holder_is_gone(r.claimed_by)
            or r.claimed_by == holder
        ]
        if not free:
            return []
        ids = [r.id for r in free]
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(claimed_by=holder, claimed_until=now + lease)
        )
        raws = self.reply_bytes(conn, ids)
        for r in free:
            if r.id not in raws:  # only by hand: enqueue writes both rows in one savepoint
                log.error("reply %s has no bytes in outbox_bodies; marked failed", r.message_id)
                self.mark_failed(conn, r.id, now, "its bytes are missing from outbox_bodies")
        return [
            OutboxItem(r.id, json.loads(r.recipients), raws[r.id], r.attempts, r.message_id)
            for r in free
            if r.id in raws
        ]

    def reply_bytes(self, conn: Connection, outbox_ids: Collection[int]) -> dict[int, bytes]:
        """The bytes of these replies, by outbox id."""
        rows = conn.execute(
            select(outbox_bodies.c.outbox_id, outbox_bodies.c.raw).where(
                outbox_bodies.c.outbox_id.in_(list(outbox_ids))
            )
        )
        return {row.outbox_id: bytes(row.raw) for row in rows}

    def mark_all_sent(self, conn: Connection, marks: Sequence[tuple[int, datetime]]) -> None:
        """Mark replies sent (each at its own time), in one statement run for all of them."""
        self._change_many(conn, _MARK_SENT, [{"b_id": i, "b_now": at} for i, at in marks])

    def mark_retry(
        self,
        conn: Connection,
        item_id: int,
        now: datetime,
        delay: timedelta,
        error: str,
        *,
        count: bool = True,
    ) -> None:
        """Try the reply again after `delay`. `count=False` when the reply was never handed to
        the server (it could not be reached): that try is not one of the reply's attempts."""
        conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id)
            .values(
                attempts=outbox.c.attempts + (1 if count else 0),
                next_attempt_at=now + delay,
                last_error=error,
                claimed_by=None,
                claimed_until=None,
            )
        )

    def due_again(self, conn: Connection, at: datetime, error_prefix: str) -> int:
        """Make the replies that wait with an error starting `error_prefix` due at `at`."""
        return conn.execute(
            update(outbox)
            .where(
                outbox.c.sent_at.is_(None),
                outbox.c.failed_at.is_(None),
                outbox.c.next_attempt_at > at,
                outbox.c.last_error.startswith(error_prefix, autoescape=True),
            )
            .values(next_attempt_at=at)
        ).rowcount

    def mark_failed(self, conn: Connection, item_id: int, now: datetime, error: str) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id)
            .values(
                attempts=outbox.c.attempts + 1,
                failed_at=now,
                last_error=error,
                claimed_by=None,
                claimed_until=None,
            )
        )

    def replies_to(self, conn: Connection, address: str, since: datetime) -> int:
        """Replies queued for `address` since a time (digests and forwards do not count)."""
        values = {"b_hash": reply_log_hash(address), "b_since": since}
        return int(self._first(conn, _REPLIES_TO, values)[0])

    def prune_reply_log(self, conn: Connection, before: datetime) -> int:
        result = conn.execute(delete(reply_log).where(reply_log.c.created_at < before))
        return int(result.rowcount or 0)

    def sent_since(self, conn: Connection, since: datetime) -> int:
        return int(
            conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.sent_at >= since)
            ).scalar_one()
        )

    # --- who works on the mailbox, and how it went ----------------------------------------

    def acquire_lease(
        self, conn: Connection, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> str | None:
        """Take or renew the lease; returns None on success, else the other live holder."""
        row = conn.execute(select(leases).where(leases.c.name == name)).first()
        if row is None:
            conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now + ttl))
            return None
        if row.holder != holder and row.expires_at > now and not holder_is_gone(row.holder):
            return str(row.holder)
        conn.execute(
            update(leases).where(leases.c.name == name).values(holder=holder, expires_at=now + ttl)
        )
        return None

    def release_lease(self, conn: Connection, name: str, holder: str) -> None:
        conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def set_health(self, conn: Connection, name: str, value: str, now: datetime) -> None:
        done = conn.execute(update(health).where(health.c.name == name).values(value=value, at=now))
        if done.rowcount == 0:
            conn.execute(insert(health).values(name=name, value=value, at=now))

    def health(self, conn: Connection) -> dict[str, tuple[str, datetime]]:
        return {r.name: (r.value, r.at) for r in conn.execute(select(health))}

    def outbox_backlog(self, conn: Connection) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
            ).scalar_one()
        )


def reply_log_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def process_holder() -> str:
    """This process, as lease and claim holder: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_gone(holder: str | None) -> bool:
    """True when `holder` was a process on this machine that has ended (e.g. killed)."""
    if not holder or ":" not in holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def parsed_to_json(parsed: ParsedMail) -> str:
    return parsed.model_dump_json()
