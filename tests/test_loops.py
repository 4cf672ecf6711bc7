"""No loops, no races: auto-responders that answer everything, and two workers at once.

A registration bot that answers an out-of-office reply a hundred times, or two copies of it
that both give away the last seat, is worse than no bot. These tests set both up for real.
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import (
    JAN,
    db_rows,
    form,
    mail,
    make_config,
    register,
    run_cycle,
    server_config,
    server_config_file,
)
from servers import Dovecot, SmtpSink

from mailbot.config import Config
from mailbot.parse import parse_mail
from mailbot.store.schema import messages, registrations

RESPONDER = "anna.arndt@example.org"


def responder_answer(received: bytes, *, polite: bool, n: int) -> bytes:
    """What an auto-responder at the participant's address sends back to each of our mails."""
    ours = email.message_from_bytes(received, policy=policy.default)
    answer = EmailMessage()
    answer["From"] = f"Anna Arndt <{RESPONDER}>"
    answer["To"] = str(ours["From"])
    answer["Subject"] = f"Re: {ours['Subject']}"
    answer["Message-ID"] = f"<answer-{n}@example.org>"
    answer["In-Reply-To"] = str(ours["Message-ID"])
    if polite:  # RFC 3834: says what it is, and copies our X-Loop
        answer["Auto-Submitted"] = "auto-replied"
        answer["X-Loop"] = str(ours["X-Loop"])
        answer.set_content("Ich bin bis zum 20. Januar nicht im Büro.")
    else:  # the worst kind: no headers, and it repeats the registration
        answer.set_content(
            "Vielen Dank für Ihre Nachricht!\n\nHiermit melde ich mich zur 2. Werkstatt an.\n\n"
            f"Name: Anna Arndt\nE-Mail: {RESPONDER}\n"
        )
    return answer.as_bytes()


@pytest.mark.parametrize("polite", [True, False], ids=["rfc3834-responder", "headerless-responder"])
def test_an_auto_responder_exchange_stops(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, polite: bool
) -> None:
    config = server_config(tmp_path, dovecot, smtp_sink)
    register(dovecot, "Anna Arndt", RESPONDER, JAN)
    answered = 0
    for cycle in range(30):
        run_cycle(config)
        new = smtp_sink.received[answered:]
        answered = len(smtp_sink.received)
        if not new:
            break
        for n, item in enumerate(new):
            dovecot.append(responder_answer(item.data, polite=polite, n=cycle * 100 + n), JAN)
    else:
        pytest.fail("the exchange did not stop within 30 cycles")
    to_responder = [r for r in smtp_sink.received if RESPONDER in r.rcpt_tos]
    cap = config.mailbot.max_replies_per_address_per_day
    print(
        f"\n{'polite' if polite else 'headerless'} responder: {len(to_responder)} replies, "
        f"stopped after {cycle} cycles"
    )
    if polite:
        assert len(to_responder) == 1  # the confirmation; the out-of-office gets no answer
    else:
        assert len(to_responder) == cap  # the loop brake, not the parser, ends it
    # Every mail was settled; nothing waits in the inbox or fails.
    assert {m.state for m in db_rows(config, messages)} <= {"done", "review"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Return-Path": "<>", "Auto-Submitted": "auto-replied"}, "empty Return-Path"),
        ({"Auto-Submitted": "auto-replied", "Precedence": "bulk"}, "Auto-Submitted: auto-replied"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"List-Unsubscribe": "<mailto:x@example.org>"}, "List-Unsubscribe header"),
        ({"X-Auto-Response-Suppress": "DR, OOF"}, "X-Auto-Response-Suppress: oof"),
        ({"X-Autorespond": "yes"}, "X-Autorespond header"),
        ({"X-Loop": "anmeldung@ils-forschung.example"}, "X-Loop names us"),
        (
            {"X-MS-Exchange-Inbox-Rules-Loop": "x@example.org"},
            "X-MS-Exchange-Inbox-Rules-Loop header",
        ),
    ],
)
def test_no_reply_rules_in_order(tmp_path: Path, headers: dict[str, str], reason: str) -> None:
    config = make_config(tmp_path)
    raw = mail(form("Anna Arndt", RESPONDER), sender=f"Anna Arndt <{RESPONDER}>", headers=headers)
    parsed = parse_mail(raw, own_addresses=config.own_addresses)
    assert parsed.headers.no_reply_reason == reason


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@example.org",
        "owner-workshops@example.org",
        "workshops-request@example.org",
        "no-reply@example.org",
        "anmeldung@ils-forschung.example",
    ],
)
def test_senders_that_are_never_answered(tmp_path: Path, sender: str) -> None:
    config = make_config(tmp_path)
    parsed = parse_mail(
        mail(form("Anna Arndt", RESPONDER), sender=sender), own_addresses=config.own_addresses
    )
    assert parsed.headers.no_reply_reason is not None


def test_two_workers_at_once(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    """Someone starts a second worker by mistake: no double seat, no double reply."""
    config_file = server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        database="two.db",
        **{
            "poll_seconds = 60": "poll_seconds = 5",
            "capacity = 30                          # assumed": "capacity = 10 #",
            'time = "07:30"': 'time = "23:59"',
            # The 2018 workshop ended long ago: the nightly retention purge would erase it.
            "retention_days = 180": "retention_days = 100000",
        },
    )
    count = 40
    firsts = ("Anna", "Bernd", "Clara", "Dieter", "Eva", "Frank", "Gisela", "Hans")
    lasts = ("Arndt", "Brandt", "Claussen", "Dietz", "Ebert")
    for i in range(count):
        name = f"{firsts[i % 8]} {lasts[i // 8]}"
        register(dovecot, name, f"p{i}@example.org", JAN + timedelta(minutes=i))
    logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
    workers = []
    for log_path in logs:
        with log_path.open("w", encoding="utf-8") as log_file:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mailbot", "run", "--config", str(config_file)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )
    try:
        smtp_sink.wait_for(count, timeout=90)
        time.sleep(2)  # give a double answer the chance to show up
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
    output = "".join(p.read_text(encoding="utf-8") for p in logs)
    replies = [r for r in smtp_sink.received if r.rcpt_tos[0].startswith("p")]
    assert sorted(r.rcpt_tos[0] for r in replies) == sorted(
        f"p{i}@example.org" for i in range(count)
    )
    config: Config = make_config(tmp_path, imap_port=dovecot.port, smtp_port=smtp_sink.port)
    config = config.model_copy(
        update={
            "database": config.database.model_copy(
                update={"url": f"sqlite:///{tmp_path / 'two.db'}"}
            )
        }
    )
    rows = db_rows(config, registrations)
    assert len(rows) == count
    assert sum(r.status == "confirmed" for r in rows) == 10
    assert "another mailbot" in output and "Traceback" not in output


def test_loop_brake_counts_per_address_from_its_own_log(tmp_path: Path) -> None:
    """The brake counts replies per address in reply_log (an index lookup, not an outbox scan):
    any case of the address, only participant replies, only the last day; pruned later."""
    from mailbot.store.db import Store
    from mailbot.store.schema import reply_log

    store = Store(f"sqlite:///{tmp_path / 'brake.sqlite3'}")

    def queue(key: str, purpose: str, recipients: list[str], hours: int) -> None:
        with store.transaction() as conn:
            store.enqueue(
                conn,
                key=key,
                message_row=None,
                purpose=purpose,
                recipients=recipients,
                message_id=f"<{key}@example.org>",
                raw=b"x",
                now=JAN + timedelta(hours=hours),
            )

    queue("a", "reply:confirmed", ["anna@example.org", "bernd@example.org"], 0)
    queue("b", "promotion", ["Anna@Example.org"], 30)
    queue("c", "digest", ["anna@example.org"], 30)
    queue("d", "forward", ["anna@example.org"], 30)
    queue("b", "promotion", ["anna@example.org"], 31)  # the same key: not queued, not counted
    with store.transaction() as conn:
        assert store.replies_to(conn, "anna@example.org", JAN) == 2
        assert store.replies_to(conn, "ANNA@example.org", JAN + timedelta(hours=1)) == 1
        assert store.replies_to(conn, "bernd@example.org", JAN) == 1
        assert store.replies_to(conn, "clara@example.org", JAN) == 0
        assert store.prune_reply_log(conn, JAN + timedelta(hours=1)) == 2
        hashes = [r.address_hash for r in conn.execute(reply_log.select())]
    assert hashes and not any("anna" in h for h in hashes)  # hashed, never the address
    store.close()


def test_an_upgraded_database_fills_the_loop_brake_log(tmp_path: Path) -> None:
    """A database from before reply_log: its recent replies are counted at the first start."""
    from datetime import UTC, datetime

    from sqlalchemy import delete

    from mailbot.store.db import Store
    from mailbot.store.schema import reply_log

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    now = datetime.now(UTC)
    store = Store(url)
    with store.transaction() as conn:
        for key, purpose in (("a", "reply:confirmed"), ("b", "digest")):
            store.enqueue(
                conn,
                key=key,
                message_row=None,
                purpose=purpose,
                recipients=["anna@example.org"],
                message_id=f"<{key}@example.org>",
                raw=b"x",
                now=now,
            )
        conn.execute(delete(reply_log))  # as it was before the upgrade
    store.close()
    store = Store(url)
    with store.transaction() as conn:
        assert store.replies_to(conn, "anna@example.org", now - timedelta(days=1)) == 1
    store.close()
