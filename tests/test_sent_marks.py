"""A sender beside the poll writes its "sent" marks together, and never loses one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import queue_replies

from mailbot.send import smtp
from mailbot.send.smtp import MARK_BATCH, SentMarks
from mailbot.store.db import Store

NOW = datetime(2018, 2, 1, 9, 0, tzinfo=UTC)


def outbox_store(path: Path, count: int) -> Store:
    store = Store(f"sqlite:///{path}")
    queue_replies(store, 1, count, NOW)
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
        marks.flush()  # what send_outbox does at its end (a claim writes them too)
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


def test_a_claim_writes_the_pending_marks_first_in_its_own_transaction(tmp_path: Path) -> None:
    """One wait for the poll's write lock per claim, not two; and a reply sent but not yet
    marked is never handed back by the claim (it would go out twice)."""
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, 3)
    try:
        first, _capped = smtp._claim(store, lambda: NOW, hourly_cap=100)
        assert [item.id for item in first] == [1, 2, 3]
        marks = SentMarks(store, wait=False)
        marks.add(1, NOW)
        marks.add(2, NOW)
        assert marked(path) == 0 and len(marks.pending) == 2
        # A claim hands our own claimed entries back: without the marks, all three again.
        again, _capped = smtp._claim(store, lambda: NOW, hourly_cap=100, marks=marks)
        assert [item.id for item in again] == [3]
        assert marked(path) == 2 and not marks.pending
    finally:
        store.close()


def test_marks_stay_pending_when_the_claim_fails(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = outbox_store(path, 2)
    try:
        marks = SentMarks(store, wait=False)
        marks.add(1, NOW)

        def broken_clock() -> datetime:
            raise RuntimeError("clock broke mid-claim")

        with pytest.raises(RuntimeError):
            smtp._claim(store, broken_clock, hourly_cap=100, marks=marks)
        assert marked(path) == 0 and marks.pending == [(1, NOW)]  # rolled back, still pending
        marks.flush()
        assert marked(path) == 1
    finally:
        store.close()
