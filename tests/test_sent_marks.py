"""A sender beside the poll writes its "sent" marks together, and never loses one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.send import smtp
from mailbot.send.smtp import MARK_BATCH, SentMarks
from mailbot.store.db import Store

NOW = datetime(2018, 2, 1, 9, 0, tzinfo=UTC)


def outbox_store(path: Path, count: int) -> Store:
    store = Store(f"sqlite:///{path}")
    with store.transaction() as conn:
        for i in range(count):
            store.enqueue(
                conn,
                key=f"reply:{i}",
                message_row=None,
                purpose="reply:confirmed",
                recipients=[f"p{i}@example.org"],
                message_id=f"<{i}@example.org>",
                raw=b"x",
                now=NOW,
            )
    return store


def marked(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(
            db.execute("select count(*) from outbox where sent_at is not null").fetchone()[0]
        )


def test_marks_wait_for_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, MARK_BATCH + 3)
    try:
        marks = SentMarks(store, wait=False)
        for item_id in range(1, MARK_BATCH):
            marks.add(item_id, NOW)
        assert marked(path) == 0
        marks.add(MARK_BATCH, NOW)
        assert marked(path) == MARK_BATCH and not marks.pending
        marks.add(MARK_BATCH + 1, NOW)
        marks.flush()  # what send_outbox does before each claim and at its end
        assert marked(path) == MARK_BATCH + 1
    finally:
        store.close()


def test_old_marks_go_in_without_a_full_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, 2)
    monkeypatch.setattr(smtp, "MARK_SECONDS", 0.0)
    try:
        SentMarks(store, wait=False).add(1, NOW)
        assert marked(path) == 1
    finally:
        store.close()


def test_marks_stay_in_memory_while_the_poll_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, MARK_BATCH)
    poll = sqlite3.connect(path, isolation_level=None)
    try:
        marks = SentMarks(store, wait=False)
        poll.execute("BEGIN IMMEDIATE")
        for item_id in range(1, MARK_BATCH + 1):
            marks.add(item_id, NOW)
        assert len(marks.pending) == MARK_BATCH  # the lock was taken: nothing written, none lost
        poll.execute("COMMIT")
        marks.flush()
        assert marked(path) == MARK_BATCH and not marks.pending
    finally:
        poll.close()
        store.close()


def test_old_marks_go_in_between_failing_replies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the time bound was only looked at when a reply succeeded, so after
    a few successes a stalling server could keep marks in memory until the claim expired and
    another sender sent those replies again. send_outbox ticks before every reply."""
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, 3)
    try:
        marks = SentMarks(store, wait=False)
        marks.add(1, NOW)
        marks.tick()
        assert marks.pending  # young and few: still waiting
        monkeypatch.setattr(smtp, "MARK_SECONDS", 0.0)
        marks.tick()  # what send_outbox does before the next reply, which may fail
        assert marked(path) == 1 and not marks.pending
    finally:
        store.close()
