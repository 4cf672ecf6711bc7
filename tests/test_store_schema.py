"""A database written by an older mailbot opens in this one, and a newer one is refused."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.store.db import Store, StoreError
from mailbot.store.schema import SCHEMA_VERSION

NOW = datetime(2018, 2, 1, 9, 30, tzinfo=UTC)


def queue_reply(store: Store, number: int, raw: bytes) -> None:
    with store.transaction() as conn:
        store.enqueue(
            conn,
            key=f"reply:{number}",
            message_row=None,
            purpose="reply:confirmed",
            recipients=[f"p{number}@example.org"],
            message_id=f"<{number}@example.org>",
            raw=raw,
            now=NOW,
        )


def make_version_1(path: Path, replies: dict[int, bytes]) -> None:
    """Turn a new database into the layout of schema version 1: the bytes of each reply in
    its outbox row, no `outbox_bodies`."""
    store = Store(f"sqlite:///{path}")
    for number, raw in replies.items():
        queue_reply(store, number, raw)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE outbox ADD COLUMN raw BLOB NOT NULL DEFAULT x''")
        db.execute(
            "UPDATE outbox SET raw = "
            "(SELECT raw FROM outbox_bodies WHERE outbox_bodies.outbox_id = outbox.id)"
        )
        db.execute("DROP TABLE outbox_bodies")
        db.execute("DELETE FROM schema_info")
        db.execute("INSERT INTO schema_info (version) VALUES (1)")
    db.close()


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        names = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    db.close()
    return names


def test_version_1_database_keeps_every_reply(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    replies = {
        1: b"Subject: eins\r\n\r\nHallo\r\n",
        2: b"Subject: zwei\r\n\r\n" + bytes(range(256)),
    }
    make_version_1(path, replies)
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
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT max(version) FROM schema_info").fetchone() == (SCHEMA_VERSION,)
    db.close()
    Store(f"sqlite:///{path}").close()  # opening it again changes nothing


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


def test_newer_database_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        Store(f"sqlite:///{path}")
