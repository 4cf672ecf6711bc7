"""An SMTP server that is down, or refuses the login, for hours: no reply is given up.

Found by review: a failed connection counted as an attempt of every reply queued, so with
MAX_ATTEMPTS = 12 and the backoff capped at two hours, an outage of about eight hours (a
night, a weekend, a password changed on the server) marked a day's confirmations failed for
good. Now only what goes wrong with one reply counts as its attempt (a 4xx, the connection
lost while it was sent); failing to reach or log in to the server (connect, TLS, EHLO, AUTH)
leaves the replies waiting, the sender backs off as a whole, and an alert says so in
`mailbot status` and the digest until a connection gets through again.

Against the real SMTP sink (tests/servers.py), a closed port for "down", tests/proxy.py to
break a connection at an exact moment, and a clock the test moves, as the other sender tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from helpers import make_config, queue_replies
from proxy import Proxy
from servers import SmtpSink
from sqlalchemy import select

from mailbot.config import SmtpSettings
from mailbot.send import smtp
from mailbot.send.smtp import MAX_ATTEMPTS, MAX_DELAY, SERVER_ALERT, SendReport
from mailbot.store.db import Store
from mailbot.store.schema import outbox

pytestmark = pytest.mark.servers

NOW = datetime(2018, 1, 20, 18, 0, tzinfo=UTC)  # a Saturday evening
SENDER = "anmeldung@ils-forschung.example"
POISON = b"Message-ID: <poison@example.org>\r\nSubject: poison\r\n\r\nbreaks the line\r\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    yield found
    found.close()


def settings(port: int, **more: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=5, **more)


def send(store: Store, smtp_settings: SmtpSettings, at: datetime) -> SendReport:
    """One pass of the sender, as every poll runs it, at the time `at`."""
    return asyncio.run(
        asyncio.wait_for(smtp.send_outbox(store, smtp_settings, SENDER, lambda: at), timeout=60)
    )


def replies(store: Store) -> list[Any]:
    with store.transaction() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.id)))


def alert(store: Store) -> tuple[str, datetime] | None:
    with store.transaction() as conn:
        return store.health(conn).get(SERVER_ALERT)


def test_a_day_without_the_server_gives_up_no_reply(tmp_path: Path, store: Store) -> None:
    from mailbot.digest.collect import collect

    sink = SmtpSink()  # not started: its port is closed
    queue_replies(store, 1, 3, NOW)
    at, tries = NOW, []
    while at < NOW + timedelta(hours=24):  # a poll every minute
        report = send(store, settings(sink.port), at)
        assert report.sent == report.failed == 0
        if report.unreachable:
            tries.append(at - NOW)
        at += timedelta(minutes=1)

    rows = replies(store)
    assert [(r.attempts, r.failed_at, r.sent_at) for r in rows] == [(0, None, None)] * 3
    assert all(r.last_error.startswith("connect: ") for r in rows)
    # The sender backs off as a whole: after 1, 2, 4 … minutes, then every two hours.
    assert tries[:5] == [timedelta(minutes=m) for m in (0, 1, 2, 4, 8)], tries
    assert all(b - a == MAX_DELAY for a, b in pairwise(tries[8:])), tries
    assert len(tries) < 25, tries

    # The organisers see it: `mailbot status` prints every alert, the digest lists it.
    noted = alert(store)
    assert noted is not None and noted[1] == NOW, noted  # since when
    assert f"127.0.0.1:{sink.port}" in noted[0] and "unreachable" in noted[0]
    config = make_config(tmp_path, smtp_port=sink.port)
    with store.transaction() as conn:
        attention = collect(conn, config, at).attention
    assert [i.text for i in attention if i.kind == "error"] == [noted[0]]

    with sink:  # the server is back
        at += MAX_DELAY
        report = send(store, settings(sink.port), at)
        assert (report.sent, report.retried, report.failed) == (3, 0, 0)
        assert len(sink.received) == 3
    assert all(r.sent_at is not None for r in replies(store))
    cleared = alert(store)
    assert cleared is not None and cleared[0] == "", cleared


def test_replies_that_waited_out_an_outage_go_as_soon_as_it_ends(store: Store) -> None:
    """The backoff of the waiting replies is not kept once a connection gets through: they go
    in the same pass as a reply queued since, not up to two hours after it (a "you moved up"
    long before the "you are on the waiting list" it follows; mail clients sort the two by
    their Date, which is when each was written)."""
    sink = SmtpSink()  # not started: its port is closed
    queue_replies(store, 1, 1, NOW)
    at = NOW
    while at < NOW + timedelta(hours=3):  # a poll every minute
        send(store, settings(sink.port), at)
        at += timedelta(minutes=1)
    assert replies(store)[0].next_attempt_at > at  # it waits on, past the outage
    with sink:  # the server is back, and a new reply is queued
        queue_replies(store, 2, 1, at)
        report = send(store, settings(sink.port), at)
        assert report.sent == 2
        assert sorted(m.message_id for m in sink.received) == ["<1@example.org>", "<2@example.org>"]
    assert [r.sent_at is not None for r in replies(store)] == [True, True]


def test_a_refused_login_is_not_held_against_the_replies(store: Store) -> None:
    """The password was changed on the server and not yet in config.toml: AUTH fails."""
    with SmtpSink(username="bot@example.org", password="new-S3cret") as sink:
        queue_replies(store, 1, 2, NOW)
        old = settings(sink.port, username="bot@example.org", password="old-Geheim")
        at, tries = NOW, 0
        while at < NOW + timedelta(hours=10):
            report = send(store, old, at)
            assert report.failed == 0
            tries += report.unreachable
            at += timedelta(minutes=1)
        assert 5 < tries < 15, tries  # backed off, not every minute
        assert sink.auth_attempts and not any(ok for _, ok in sink.auth_attempts)
        assert [(r.attempts, r.failed_at) for r in replies(store)] == [(0, None)] * 2
        noted = alert(store)
        assert noted is not None and "refuses the login" in noted[0], noted
        assert "smtp.password" in noted[0] and "old-Geheim" not in noted[0]

        fixed = settings(sink.port, username="bot@example.org", password="new-S3cret")
        assert send(store, fixed, at + MAX_DELAY).sent == 2
        assert len(sink.received) == 2


def test_a_refused_ehlo_is_the_servers_failure(store: Store, smtp_sink: SmtpSink) -> None:
    """Without TLS and AUTH the first command after the greeting is the first reply's EHLO;
    the connection lost there is the server's failure, not the reply's."""
    queue_replies(store, 1, 1, NOW)
    with Proxy(smtp_sink.host, smtp_sink.port) as proxy:
        proxy.cut_on(b"EHLO", before=True)
        report = send(store, settings(proxy.port), NOW)
        assert report.unreachable and report.retried == 1
        assert replies(store)[0].attempts == 0
        assert send(store, settings(proxy.port), NOW + timedelta(minutes=1)).sent == 1


def test_a_reply_that_breaks_the_connection_each_time_still_gives_up(
    store: Store, smtp_sink: SmtpSink
) -> None:
    """A drop while a reply is sent counts as its attempt: it might be that reply's doing.
    The next reply opens a new connection, and that is not held against it."""
    queue_replies(store, 1, 1, NOW, raw=POISON)
    queue_replies(store, 2, 1, NOW)
    with Proxy(smtp_sink.host, smtp_sink.port) as proxy:
        proxy.cut_on(b"subject: poison", direction="up", times=MAX_ATTEMPTS)
        at = NOW
        for _ in range(MAX_ATTEMPTS):
            send(store, settings(proxy.port), at)
            at += MAX_DELAY
        assert proxy.cuts == MAX_ATTEMPTS
    poison, other = replies(store)
    assert poison.failed_at is not None and poison.attempts == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in poison.last_error
    assert other.sent_at is not None and other.attempts == 1
    assert [r.rcpt_tos for r in smtp_sink.received] == [["p2@example.org"]]


def test_a_server_gone_after_a_reply_broke_the_connection(
    store: Store, smtp_sink: SmtpSink
) -> None:
    """The reply that was being sent when the server went away counts that attempt; the
    ones after it, which never reached the server, do not."""
    queue_replies(store, 1, 1, NOW, raw=POISON)
    queue_replies(store, 2, 2, NOW)
    with Proxy(smtp_sink.host, smtp_sink.port) as proxy:
        proxy.on_command(b"subject: poison", proxy.refuse)  # the server goes down mid-reply
        report = send(store, settings(proxy.port), NOW)
        assert report.unreachable and (report.sent, report.retried) == (0, 3)
        assert [r.attempts for r in replies(store)] == [1, 0, 0]
        proxy.accept()
        assert send(store, settings(proxy.port), NOW + timedelta(minutes=1)).sent == 3
    assert len(smtp_sink.received) == 3


def test_a_reply_refused_again_and_again_still_gives_up(store: Store, smtp_sink: SmtpSink) -> None:
    queue_replies(store, 1, 1, NOW)
    smtp_sink.fail_next(MAX_ATTEMPTS, code=451, text="4.3.0 try again later", stage="MAIL")
    at = NOW
    for _ in range(MAX_ATTEMPTS):
        assert not send(store, settings(smtp_sink.port), at).unreachable
        at += MAX_DELAY
    (row,) = replies(store)
    assert row.failed_at is not None and row.attempts == MAX_ATTEMPTS
    assert "451" in row.last_error and len(smtp_sink.received) == 0
