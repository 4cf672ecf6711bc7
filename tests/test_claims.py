"""The sender beside a long poll claims replies without ever waiting for the poll's write lock.

It claims a few at a time and the next ones before it runs out, never one it still holds;
with the lock taken it tries again after a short, growing pause instead of sleeping in
SQLite's busy handler or trying before every reply; with the
hourly cap reached it stops. Against the real SMTP sink, with a "poll" that keeps taking the
write lock and adding replies, every reply still goes out exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import queue_replies
from servers import SmtpSink

from mailbot.config import SmtpSettings
from mailbot.send import smtp
from mailbot.send.smtp import BESIDE_CLAIM, BESIDE_LOW, BUSY_PAUSE, Claims, SentMarks
from mailbot.store.db import Store

NOW = datetime(2018, 2, 1, 9, 0, tzinfo=UTC)


def beside(store: Store, hourly_cap: int = 100_000) -> Claims:
    return Claims(store, lambda: NOW, hourly_cap, SentMarks(store, wait=False), beside=True)


def count_transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Counts the transactions begun on `store` from now on; returns the counter."""
    begun = 0
    real = store.transaction

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal begun
        begun += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "transaction", counted)
    return lambda: begun


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    yield found
    found.close()


def test_with_the_lock_taken_a_claim_returns_at_once_and_tries_again_after_a_pause(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_replies(store, 1, 3, NOW)
    poll = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    claims = beside(store)
    # A pause no slow machine outlasts, so "within the pause" holds for sure.
    monkeypatch.setattr(smtp, "BUSY_PAUSE", 60.0)
    monkeypatch.setattr(smtp, "BUSY_PAUSE_MAX", 60.0)
    try:
        poll.execute("BEGIN IMMEDIATE")
        began = time.monotonic()
        assert claims.more([]) == []
        assert time.monotonic() - began < 1  # not the 30 s busy timeout
        assert 50 < claims.pause() <= 60
        tries = count_transactions(store, monkeypatch)
        assert claims.more([]) == [] and tries() == 0  # within the pause: no transaction
        poll.execute("COMMIT")
        claims.marks.backoff._until = 0.0  # the pause is over
        assert [item.id for item in claims.more([])] == [1, 2, 3]
        assert tries() == 1 and claims.marks.backoff.ready()
    finally:
        poll.close()


def test_the_next_replies_are_claimed_before_the_last_ones_are_sent(store: Store) -> None:
    queue_replies(store, 1, BESIDE_CLAIM + 10, NOW)
    claims = beside(store)
    first = claims.more([])
    assert [item.id for item in first] == list(range(1, BESIDE_CLAIM + 1))
    assert claims.more(first[-BESIDE_LOW:]) == []  # enough in hand
    sent, in_hand = first[: -BESIDE_LOW + 1], first[-BESIDE_LOW + 1 :]
    for item in sent:
        claims.marks.pending.append((item.id, NOW))  # sent, the marks not yet written
    following = claims.more(in_hand)
    # Neither a reply in hand nor one sent but not yet marked is handed back: each would go
    # out twice. The claim wrote the marks first.
    assert [item.id for item in following] == list(range(BESIDE_CLAIM + 1, BESIDE_CLAIM + 11))
    assert not claims.marks.pending


def test_with_nothing_due_it_looks_again_after_a_pause(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp, "EMPTY_PAUSE", 60.0)  # a slow machine cannot outlast it
    claims = beside(store)
    assert claims.more([]) == []
    assert claims.pause() == smtp.EMPTY_PAUSE
    queue_replies(store, 1, 1, NOW)
    assert claims.more([]) == []  # within the pause: no transaction at all
    claims._empty_until = 0.0  # the pause is over
    assert [item.id for item in claims.more([])] == [1]


def test_replies_in_hand_count_against_the_hourly_cap(store: Store) -> None:
    """Found by review: the next claim came on top of the replies still in hand."""
    queue_replies(store, 1, 40, NOW)
    claims = beside(store, hourly_cap=20)
    first = claims.more([])
    assert len(first) == 20
    for item in first[:5]:
        claims.marks.pending.append((item.id, NOW))  # 5 sent, 15 in hand
    assert claims.more(first[5:]) == [] and claims.capped


def test_at_the_hourly_cap_the_sender_beside_the_poll_stops(store: Store) -> None:
    queue_replies(store, 1, 2, NOW)
    settings = SmtpSettings(host="127.0.0.1", port=9, security="none")  # never reached
    report = asyncio.run(
        asyncio.wait_for(
            smtp.send_outbox(
                store, settings, "org@example.org", lambda: NOW, hourly_cap=0, wait_for_lock=False
            ),
            timeout=10,
        )
    )
    assert report.capped and report.sent == 0


def test_beside_a_poll_that_keeps_the_lock_busy_each_reply_goes_out_once(
    tmp_path: Path, store: Store, smtp_sink: SmtpSink
) -> None:
    total = 300
    queue_replies(store, 1, 20, NOW)
    done = threading.Event()

    def poll() -> None:
        """Batches as the poll settles them: the write lock held a while, new replies added."""
        connection = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
        try:
            for first in range(21, total + 1, 20):
                connection.execute("BEGIN IMMEDIATE")
                time.sleep(0.03)
                connection.execute("COMMIT")
                queue_replies(store, first, 20, NOW)
        finally:
            connection.close()
            done.set()

    def keep_going() -> bool:
        return not (done.is_set() and len(smtp_sink.received) >= total)

    settings = SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, security="none")
    thread = threading.Thread(target=poll)
    thread.start()
    report = asyncio.run(
        asyncio.wait_for(
            smtp.send_outbox(
                store,
                settings,
                "org@example.org",
                lambda: datetime.now(UTC),
                wait_for_lock=False,
                keep_going=keep_going,
            ),
            timeout=120,
        )
    )
    thread.join()
    ids = [r.message_id for r in smtp_sink.received]
    assert report.sent == total == len(ids) == len(set(ids))
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        unsent = db.execute("select count(*) from outbox where sent_at is null").fetchone()[0]
    assert unsent == 0


def test_while_the_poll_holds_the_lock_the_sender_tries_it_only_now_and_then(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply every 2 ms for 0.2 s with the lock taken: the pause doubles (5, 10, 20, 20 …
    ms), so about a dozen tries, not one per reply; the first write after the lock is free
    gets through and ends the pause."""
    queue_replies(store, 1, 200, NOW)
    claims = beside(store)
    in_hand = claims.more([])[: BESIDE_LOW - 1]
    tries = count_transactions(store, monkeypatch)
    poll = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        poll.execute("BEGIN IMMEDIATE")
        until = time.monotonic() + 0.2
        while time.monotonic() < until:
            claims.marks.add(in_hand[0].id, NOW)  # a reply sent
            assert claims.more(in_hand) == []
            time.sleep(0.002)
        assert 3 <= tries() <= 16, tries()
        poll.execute("COMMIT")
        time.sleep(claims.pause() + BUSY_PAUSE * 8)
        assert claims.more(in_hand)  # the claim gets through, with the marks first
        assert claims.marks.backoff.ready() and not claims.marks.pending
    finally:
        poll.close()
