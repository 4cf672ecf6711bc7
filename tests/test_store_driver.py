"""The statements run on SQLite's cursor store exactly what SQLAlchemy's execute stores."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from mailbot.decide.rules import Seat, Status
from mailbot.models import Participant
from mailbot.store.db import _INSERT_PARTICIPANT, _MARK_SENT, Store
from mailbot.store.driver import bind_processor, utc_text
from mailbot.store.schema import UtcDateTime, metadata

NOW = datetime(2018, 2, 1, 9, 30, 15, 123456, tzinfo=UTC)


def run_everything(store: Store) -> list[Any]:
    """One of each statement a mail runs, with odd values; what the methods return."""
    answers: list[Any] = []
    with store.transaction() as conn:
        row = store.record_message(
            conn,
            NOW,
            folder="INBOX",
            uidvalidity=7,
            uid=42,
            dedupe_key="mid:abc",
            message_id="<a@example.org>",
            arrival=NOW - timedelta(minutes=3),
            sender="anna@example.org",
            subject="Anmeldung – Grüße 😀",
            intent="register",
            language="de",
            state="done",
            outcome="confirmed",
            reason=None,
            parsed_json='{"x": 1}',
            error=None,
            forwarded_by=None,
        )
        answers.append(row)
        store.update_message(conn, row, NOW + timedelta(seconds=1), attempts=2, error="boom")
        answers.append(store.message_by_key(conn, "mid:abc"))
        answers.append(store.message_by_key(conn, "mid:nothing"))
        anna = Participant(name="Anna Ärger", email="anna@example.org", organisation="ILS")
        person = store.upsert_participant(conn, anna, "de", NOW)
        again = store.upsert_participant(conn, Participant(email="anna@example.org"), "en", NOW)
        answers += [person, again]
        seat = Seat("anna@example.org", Status.WAITLISTED, NOW - timedelta(hours=1))
        details = {"lunch": True, "role": "speaker", "notes": "vegan"}
        first = store._write_registration(conn, person, "ws2", seat, row, NOW, details)
        seat = Seat("anna@example.org", Status.CONFIRMED, NOW - timedelta(hours=1))
        second = store._write_registration(conn, person, "ws2", seat, None, NOW, {"lunch": False})
        answers += [first, second]
        for key in ("reply:1", "reply:1", "digest:1"):
            answers.append(
                store.enqueue(
                    conn,
                    key=key,
                    message_row=row,
                    purpose="digest" if key.startswith("digest") else "reply:confirmed",
                    recipients=["anna@example.org", "ben@example.org"],
                    message_id="<r@example.org>",
                    raw=b"From: x\r\n\r\n\x00\xff",
                    now=NOW,
                )
            )
        store.mark_all_sent(conn, [(1, NOW + timedelta(seconds=5))])
        # Several at once: the one not yet sent is marked at its own time, the other stays.
        store.mark_all_sent(conn, [(2, NOW + timedelta(seconds=7)), (1, NOW)])
        store.mark_all_sent(conn, [])
        answers.append(store.replies_to(conn, "ANNA@example.org", NOW - timedelta(days=1)))
        answers.append(store.replies_to(conn, "anna@example.org", NOW + timedelta(days=1)))
        answers.append(store.seat_changes(conn))
    return answers


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {
            table.name: db.execute(f"SELECT * FROM {table.name} ORDER BY rowid").fetchall()
            for table in metadata.sorted_tables
        }


def test_driver_statements_store_what_sqlalchemy_stores(tmp_path: Path) -> None:
    fast = Store(f"sqlite:///{tmp_path / 'fast.sqlite3'}")
    slow = Store(f"sqlite:///{tmp_path / 'slow.sqlite3'}")
    slow._driver = None  # every statement through Connection.execute, as on other databases
    try:
        assert fast._driver is not None
        assert run_everything(fast) == run_everything(slow)
    finally:
        fast.close()
        slow.close()
    stored = dump(tmp_path / "fast.sqlite3")
    assert stored == dump(tmp_path / "slow.sqlite3")
    assert stored["outbox_bodies"][0][1] == b"From: x\r\n\r\n\x00\xff"
    assert len(stored["reply_log"]) == 2  # the digest is not counted
    sent = [(row[0], row[1], row[7], row[9]) for row in stored["outbox"]]  # attempts, sent_at
    assert sent == [
        (1, "reply:1", 1, "2018-02-01 09:30:20.123456"),  # marked once, at its first mark
        (2, "digest:1", 1, "2018-02-01 09:30:22.123456"),
    ]


def test_a_statement_missing_a_value_says_which(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with pytest.raises(ValueError, match="b_id"), store.transaction() as conn:
            store._change(conn, _MARK_SENT, {"b_now": NOW})
    finally:
        store.close()


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "sqlalchemy"])
def test_a_savepoint_undoes_only_the_failing_mail(tmp_path: Path, driver: bool) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    if not driver:
        store._driver = None
    try:
        with store.transaction() as conn:
            with store.savepoint(conn):
                store.upsert_participant(conn, Participant(email="a@example.org"), "de", NOW)
            with pytest.raises(RuntimeError), store.savepoint(conn):
                store.upsert_participant(conn, Participant(email="b@example.org"), "de", NOW)
                raise RuntimeError("this mail fails")
            with store.savepoint(conn):
                store.upsert_participant(conn, Participant(email="c@example.org"), "de", NOW)
    finally:
        store.close()
    emails = [row[1] for row in dump(tmp_path / "db.sqlite3")["participants"]]
    assert emails == ["a@example.org", "c@example.org"]


def test_driver_errors_are_the_exceptions_sqlalchemy_raises(tmp_path: Path) -> None:
    """Callers catch SQLAlchemy's exceptions (the worker its OperationalError, StoreBusy a
    lock): a statement failing on the driver raises those too, here an IntegrityError."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with store.transaction() as conn:
            store.upsert_participant(conn, Participant(email="a@example.org"), "de", NOW)
        with pytest.raises(IntegrityError, match="UNIQUE"), store.transaction() as conn:
            store._insert(conn, _INSERT_PARTICIPANT, {"email": "a@example.org", "created_at": NOW})
    finally:
        store.close()


@pytest.mark.parametrize(
    "value",
    [
        NOW,
        datetime(2018, 2, 9, 23, 59, 59, tzinfo=UTC),  # no microseconds: still written, as .000000
        datetime(2018, 2, 10, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")),  # the day before in UTC
        datetime(2018, 10, 28, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")),  # DST ends
        datetime(2018, 3, 1, 12, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(9, 1, 1, tzinfo=UTC),  # a year of one digit: zero-padded to four
        None,
    ],
)
def test_utc_text_writes_what_sqlalchemy_writes(value: datetime | None) -> None:
    dialect = sqlite.dialect()
    column_type = UtcDateTime()
    assert bind_processor(column_type, dialect) is utc_text
    sqlalchemy_way = column_type.dialect_impl(dialect).bind_processor(dialect)
    assert utc_text(value) == sqlalchemy_way(value)


def test_utc_text_refuses_a_naive_datetime_as_sqlalchemy_does() -> None:
    naive = datetime(2018, 2, 9, 12)
    sqlalchemy_way = UtcDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    for process in (utc_text, sqlalchemy_way):
        with pytest.raises(ValueError, match="naive datetime"):
            process(naive)


def test_other_storage_formats_keep_sqlalchemys_processor() -> None:
    """Only the type itself, on SQLite, with SQLite's default storage format gets `utc_text`."""
    seconds_only = UtcDateTime()
    seconds_only.impl = sqlite.DATETIME(truncate_microseconds=True)
    assert bind_processor(seconds_only, sqlite.dialect()) is not utc_text

    class Shifted(UtcDateTime):  # a subclass may bind its values differently
        cache_ok = True

    assert bind_processor(Shifted(), sqlite.dialect()) is not utc_text
    assert bind_processor(UtcDateTime(), postgresql.dialect()) is not utc_text
