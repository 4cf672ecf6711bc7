"""A database written by an older mailbot opens in this one, and a newer one is refused."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import queue_replies

from mailbot.store.db import Store, StoreError
from mailbot.store.schema import SCHEMA_VERSION

NOW = datetime(2018, 2, 1, 9, 30, tzinfo=UTC)


def queue_reply(store: Store, number: int, raw: bytes) -> None:
    queue_replies(store, number, 1, NOW, raw)


# The outbox of schema version 1, as SQLAlchemy created it (sqlite_master of such a database).
VERSION_1_OUTBOX = """
CREATE TABLE outbox (
    id INTEGER NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    message_row INTEGER,
    purpose VARCHAR(40) NOT NULL,
    recipients TEXT NOT NULL,
    message_id VARCHAR(998) NOT NULL,
    raw BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DATETIME NOT NULL,
    sent_at DATETIME,
    failed_at DATETIME,
    last_error TEXT,
    claimed_by VARCHAR(100),
    claimed_until DATETIME,
    PRIMARY KEY (id),
    UNIQUE ("key"),
    FOREIGN KEY(message_row) REFERENCES messages (id)
)
"""


def make_version_1(path: Path, replies: dict[int, bytes], *, stamped: bool = True) -> None:
    """A database in the layout of schema version 1: the bytes of each reply in its outbox
    row and no `outbox_bodies` (`stamped=False`: from before schema_info had a row)."""
    store = Store(f"sqlite:///{path}")
    for number, raw in replies.items():
        queue_reply(store, number, raw)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE outbox RENAME TO outbox_new")
        db.execute(VERSION_1_OUTBOX)
        db.execute(
            "INSERT INTO outbox SELECT o.id, o.key, o.message_row, o.purpose, o.recipients, "
            "o.message_id, b.raw, o.created_at, o.attempts, o.next_attempt_at, o.sent_at, "
            "o.failed_at, o.last_error, o.claimed_by, o.claimed_until "
            "FROM outbox_new o JOIN outbox_bodies b ON b.outbox_id = o.id"
        )
        db.execute("DROP TABLE outbox_bodies")
        db.execute("DROP TABLE outbox_new")
        db.execute("CREATE INDEX ix_outbox_pending ON outbox (sent_at, failed_at, next_attempt_at)")
        db.execute("DELETE FROM schema_info")
        if stamped:
            db.execute("INSERT INTO schema_info (version) VALUES (1)")
    db.close()


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        names = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    db.close()
    return names


def one(path: Path, sql: str) -> tuple[object, ...]:
    with sqlite3.connect(path) as db:
        row = db.execute(sql).fetchone()
    db.close()
    return tuple(row)


@pytest.mark.parametrize("stamped", [True, False], ids=["version 1", "no version"])
def test_version_1_database_keeps_every_reply(tmp_path: Path, stamped: bool) -> None:
    path = tmp_path / "old.sqlite3"
    replies = {
        1: b"Subject: eins\r\n\r\nHallo\r\n",
        2: b"Subject: zwei\r\n\r\n" + bytes(range(256)),
    }
    make_version_1(path, replies, stamped=stamped)
    assert "raw" in columns(path, "outbox")

    store = Store(f"sqlite:///{path}")
    with store.transaction() as conn:
        claimed = store.claim_due(conn, NOW, "test-sender")
    store.close()

    assert {item.message_id: item.raw for item in claimed} == {
        "<1@example.org>": replies[1],
        "<2@example.org>": replies[2],
    }
    assert "raw" not in columns(path, "outbox")
    assert one(path, "SELECT max(version) FROM schema_info") == (SCHEMA_VERSION,)
    assert one(path, "SELECT count(*) FROM pragma_foreign_key_check") == (0,)
    assert one(path, "SELECT count(*) FROM pragma_index_list('outbox') WHERE name = "
               "'ix_outbox_pending'") == (1,)  # fmt: skip
    Store(f"sqlite:///{path}").close()  # opening it again changes nothing
    assert one(path, "SELECT count(*) FROM outbox_bodies") == (2,)


def test_a_failed_upgrade_changes_nothing_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    make_version_1(path, {1: b"Subject: eins\r\n\r\nHallo\r\n"})
    with sqlite3.connect(path) as db:  # something of the admin's own that needs the column
        db.execute("CREATE VIEW reply_sizes AS SELECT id, length(raw) AS size FROM outbox")
    db.close()
    with pytest.raises(StoreError, match="upgrading the database to schema version 2 failed"):
        Store(f"sqlite:///{path}")
    assert "raw" in columns(path, "outbox")
    assert one(path, "SELECT count(*) FROM outbox_bodies") == (0,)
    assert one(path, "SELECT max(version) FROM schema_info") == (1,)


def test_an_old_sqlite_is_told_what_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    make_version_1(path, {1: b"Subject: eins\r\n\r\nHallo\r\n"})
    # No older SQLite to run here: only the version it reports is changed.
    monkeypatch.setattr("mailbot.store.db.sqlite3.sqlite_version_info", (3, 34, 1))
    with pytest.raises(StoreError, match=r"3\.35 or newer"):
        Store(f"sqlite:///{path}")
    assert "raw" in columns(path, "outbox")


def test_deleting_a_reply_deletes_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"
    store = Store(f"sqlite:///{path}")
    queue_reply(store, 1, b"Subject: x\r\n\r\nAnna Arndt\r\n")
    queue_reply(store, 2, b"Subject: y\r\n\r\nBernd Brandt\r\n")
    with store.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM outbox WHERE message_id = '<1@example.org>'")
    store.close()
    with sqlite3.connect(path) as db:
        left = [bytes(row[0]) for row in db.execute("SELECT raw FROM outbox_bodies")]
    db.close()
    assert left == [b"Subject: y\r\n\r\nBernd Brandt\r\n"]


def test_bytes_left_by_a_delete_by_hand_are_dropped_at_start(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"
    store = Store(f"sqlite:///{path}")
    queue_reply(store, 1, b"Subject: x\r\n\r\nAnna Arndt\r\n")
    store.close()
    with sqlite3.connect(path) as db:  # the sqlite3 shell: foreign keys off, no cascade
        db.execute("DELETE FROM outbox")
    db.close()
    store = Store(f"sqlite:///{path}")
    queue_reply(store, 2, b"Subject: y\r\n\r\nBernd Brandt\r\n")  # gets the freed id
    with store.transaction() as conn:
        claimed = store.claim_due(conn, NOW, "test-sender")
    store.close()
    assert [item.raw for item in claimed] == [b"Subject: y\r\n\r\nBernd Brandt\r\n"]


def test_a_reply_without_bytes_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"
    store = Store(f"sqlite:///{path}")
    queue_reply(store, 1, b"Subject: x\r\n\r\neins\r\n")
    queue_reply(store, 2, b"Subject: y\r\n\r\nzwei\r\n")
    with store.transaction() as conn:
        conn.exec_driver_sql(
            "DELETE FROM outbox_bodies WHERE outbox_id = "
            "(SELECT id FROM outbox WHERE message_id = '<1@example.org>')"
        )
        claimed = store.claim_due(conn, NOW, "test-sender")
    store.close()
    assert [item.message_id for item in claimed] == ["<2@example.org>"]
    assert one(path, "SELECT message_id, last_error FROM outbox WHERE failed_at IS NOT NULL") == (
        "<1@example.org>",
        "its bytes are missing from outbox_bodies",
    )


def test_newer_database_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        Store(f"sqlite:///{path}")


def test_resending_a_reply_without_bytes_says_so(tmp_path: Path) -> None:
    from mailbot.admin.actions import AdminError, resend

    store = Store(f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    queue_reply(store, 1, b"Subject: x\r\n\r\neins\r\n")
    with store.transaction() as conn:
        conn.exec_driver_sql("UPDATE outbox SET sent_at = '2018-02-01 09:31:00.000000'")
    assert "queued again" in resend(store, "<1@example.org>", NOW)  # bytes there: fine
    with store.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM outbox_bodies")
    with pytest.raises(AdminError, match="has no stored text"):
        resend(store, "<1@example.org>", NOW)
    store.close()
