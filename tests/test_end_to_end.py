"""The whole way of a mail on real servers: Dovecot in, mailbot, aiosmtpd out.

Mails are APPENDed with chosen INTERNALDATEs, one cycle runs, and the tests look at what the
SMTP server received, what the database says and where the mails are in the IMAP folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import (
    JAN,
    db_rows,
    form,
    mail,
    register,
    run_cycle,
    server_config,
    statuses,
    write_config_file,
)
from servers import Dovecot, SmtpSink

from mailbot.config import Config
from mailbot.inbox.imap import FetchedMail, ImapInbox
from mailbot.pipeline import ALONE_BYTES
from mailbot.store.schema import messages, outbox


@pytest.fixture
def config(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> Config:
    return server_config(
        tmp_path,
        dovecot,
        smtp_sink,
        capacity=2,
    )


def test_registration_season(config: Config, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    first = register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    register(dovecot, "Clara Claussen", "clara.claussen@example.org", JAN + timedelta(hours=2))
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN + timedelta(hours=3))  # duplicate
    dovecot.append(
        mail(
            "Ich bin bis zum 20. Januar nicht im Büro.",
            sender="Dora Dietz <dora@example.org>",
            subject="Automatische Antwort: Einladung",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        JAN + timedelta(hours=4),
    )
    dovecot.append(
        mail(
            "Unser Newsletter für Januar: zehn Tipps für den Garten.",
            sender="Gartenfreunde <news@garten.example.net>",
            subject="Newsletter Januar",
            headers={"List-Id": "<news.garten.example.net>", "Precedence": "bulk"},
        ),
        JAN + timedelta(hours=5),
    )
    register(dovecot, "Egon Ebert", "egon.ebert@example.org", deadline)  # last second: on time
    dovecot.append(
        mail(
            "Hiermit melde ich mich von der 2. Werkstatt ab, leider bin ich verhindert.\n\n"
            "Anna Arndt",
            sender="Anna Arndt <anna.arndt@example.org>",
            subject="Abmeldung",
        ),
        deadline - timedelta(hours=1),
    )
    register(dovecot, "Frieda Fink", "frieda.fink@example.org", deadline + timedelta(seconds=1))

    report = run_cycle(config)

    assert len(report.mails) == 9
    assert statuses(config) == {
        "anna.arndt@example.org": "cancelled",
        "bernd.brandt@example.org": "confirmed",
        "clara.claussen@example.org": "confirmed",  # promoted when Anna cancelled
        "egon.ebert@example.org": "waitlisted",
        "frieda.fink@example.org": "late",
    }

    sent = smtp_sink.messages()
    by_rcpt: dict[str, list[str]] = {}
    for item, message in zip(smtp_sink.received, sent, strict=True):
        assert item.mail_from == config.organiser.address
        for rcpt in item.rcpt_tos:
            by_rcpt.setdefault(rcpt, []).append(message.get_body(("plain",)).get_content())
        assert message["Auto-Submitted"] == "auto-replied"
        assert message["Message-ID"].endswith("@ils-forschung.example>")
        assert message["From"].addresses[0].addr_spec == config.organiser.address
    # Nobody else's address, no answer to the auto-reply or the newsletter.
    assert set(by_rcpt) == {
        "anna.arndt@example.org",
        "bernd.brandt@example.org",
        "clara.claussen@example.org",
        "egon.ebert@example.org",
        "frieda.fink@example.org",
    }
    anna = by_rcpt["anna.arndt@example.org"]
    assert len(anna) == 3  # confirmation, "already registered", cancellation received
    assert "verbindlich angemeldet" in anna[0] and "Donnerstag, 22. Februar 2018" in anna[0]
    assert "bereits angemeldet" in anna[1]
    assert "Abmeldung" in anna[2]
    clara = by_rcpt["clara.claussen@example.org"]
    assert "Warteliste auf Platz 1" in clara[0] and "nachgerückt" in clara[1]
    # Egon's UID is before the cancellation's, but he arrived after it: mail is handled in
    # arrival order, so Clara had moved up and Egon is first in line.
    assert "Warteliste auf Platz 1" in by_rcpt["egon.ebert@example.org"][0]
    assert "Anmeldeschluss" in by_rcpt["frieda.fink@example.org"][0]

    threaded = next(m for m in sent if m["To"].addresses[0].addr_spec == "anna.arndt@example.org")
    first_id = mail_id(first)
    assert threaded["In-Reply-To"] == first_id and first_id in threaded["References"]
    assert threaded["Subject"] == "Re: Anmeldung 2. Werkstatt"

    # The newsletter stays in the inbox, unread; everything else is processed and read.
    assert dovecot.flags("INBOX") == {6: set()}
    processed = dovecot.flags(config.imap.processed_folder)
    assert len(processed) == 8 and all("\\Seen" in f for f in processed.values())

    # Every reply is in the outbox exactly once and marked sent.
    rows = db_rows(config, outbox)
    assert len(rows) == len(sent) == 8 and all(r.sent_at is not None for r in rows)
    assert {r.state for r in db_rows(config, messages)} == {"done", "ignored"}


def mail_id(raw: bytes) -> str:
    import email
    from email import policy

    return str(email.message_from_bytes(raw, policy=policy.default)["Message-ID"])


def test_second_cycle_answers_nothing_twice(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    run_cycle(config)
    assert len(smtp_sink.received) == 1
    report = run_cycle(config)
    assert report.mails == [] and len(smtp_sink.received) == 1
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    run_cycle(config)
    assert [r.rcpt_tos for r in smtp_sink.received] == [
        ["anna.arndt@example.org"],
        ["bernd.brandt@example.org"],
    ]


def test_question_goes_to_review_unread(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(
        mail(
            "Guten Tag, gibt es in der Nähe des ILS einen Parkplatz?\n\nGruß\nHanna Horn",
            sender="Hanna Horn <hanna.horn@example.org>",
            subject="Frage zur Werkstatt",
        ),
        JAN,
    )
    run_cycle(config)
    assert dovecot.flags(config.imap.review_folder) == {1: set()}
    assert dovecot.folder_uids("INBOX") == []
    answer, forward = smtp_sink.messages()
    assert smtp_sink.received[0].rcpt_tos == ["hanna.horn@example.org"]
    assert "Frage" in answer.get_body(("plain",)).get_content()
    # The question itself goes to the organisers, quoted, with Reply-To the participant.
    assert smtp_sink.received[1].rcpt_tos == config.organiser.digest_to
    assert forward["Reply-To"].addresses[0].addr_spec == "hanna.horn@example.org"
    assert "> Guten Tag, gibt es in der Nähe des ILS einen Parkplatz?" in forward.get_content()


def test_failing_mail_is_retried_then_quarantined(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailbot.registrar as registrar

    real_decide = registrar.decide

    def flaky(parsed, *args, **kwargs):  # type: ignore[no-untyped-def]
        if parsed.headers.from_address == "poison@example.org":
            raise RuntimeError("injected fault")
        return real_decide(parsed, *args, **kwargs)

    monkeypatch.setattr(registrar, "decide", flaky)
    register(dovecot, "Paula Poison", "poison@example.org", JAN)
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN + timedelta(hours=1))
    run_cycle(config)
    # The poison mail does not block the next one.
    assert [r.rcpt_tos for r in smtp_sink.received] == [["anna.arndt@example.org"]]
    assert dovecot.folder_uids("INBOX") == [1]
    for _ in range(config.mailbot.max_attempts - 1):
        run_cycle(config)
    assert dovecot.folder_uids("INBOX") == []
    assert dovecot.folder_uids(config.imap.review_folder) == [1]
    (row,) = db_rows(config, messages, messages.c.sender == "poison@example.org")
    assert row.state == "review" and row.attempts == config.mailbot.max_attempts
    assert "injected fault" in row.reason
    assert len(smtp_sink.received) == 1


def test_uidvalidity_change_processes_nothing_twice(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    dovecot.append(
        mail(
            "Newsletter",
            sender="news@garten.example.net",
            subject="News",
            headers={"List-Id": "<x.example.net>"},
        ),
        JAN,
    )
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == [2]
    client = dovecot.client()
    old_uidvalidity = client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()
    # Make the server forget its UIDs: a new UIDVALIDITY for the same mailbox.
    dovecot.stop()
    for index in dovecot.maildir.glob("dovecot*"):
        index.unlink()
    time.sleep(1.1)  # Dovecot derives a new UIDVALIDITY from the clock, in seconds
    dovecot.start()
    client = dovecot.client()
    assert client.select_folder("INBOX")[b"UIDVALIDITY"] != old_uidvalidity
    client.logout()
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    report = run_cycle(config)
    assert [m.sender for m in report.mails] == ["bernd.brandt@example.org"]
    assert [r.rcpt_tos for r in smtp_sink.received] == [
        ["anna.arndt@example.org"],
        ["bernd.brandt@example.org"],
    ]
    assert len(dovecot.folder_uids("INBOX")) == 1  # the newsletter, still untouched


def test_poll_once_command(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # No password in the file: it comes from MAILBOT_IMAP_PASSWORD.
    config_file = write_config_file(
        tmp_path / "config.toml",
        imap_port=dovecot.port,
        smtp_port=smtp_sink.port,
        password=None,
        database=tmp_path / "cli.sqlite3",
    )
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    env = {"MAILBOT_IMAP_PASSWORD": dovecot.password, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "poll", "--once", "--config", str(config_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "1 mails handled" in result.stdout and "1 replies sent" in result.stdout
    assert "intent=register" in result.stderr  # one log line per mail
    assert dovecot.password not in result.stderr + result.stdout
    assert smtp_sink.received[0].rcpt_tos == ["anna.arndt@example.org"]
    # The read-ahead forked at its start was not needed for one mail, and is gone with it.
    assert "reading ahead" not in result.stderr
    assert not read_ahead_helpers_of(config_file)


def read_ahead_helpers_of(config_file: Path) -> list[int]:
    """Live `mailbot-read` processes of polls run with this config file (a forked helper keeps
    its poll's command line)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "mailbot-read":
                continue
            command = (comm.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if str(config_file).encode() in command:
            found.append(int(comm.parent.name))
    return found


def test_raised_capacity_promotes_on_next_cycle(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    small = server_config(
        tmp_path,
        dovecot,
        smtp_sink,
        capacity=1,
    )
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    run_cycle(small)
    assert statuses(small)["bernd.brandt@example.org"] == "waitlisted"
    bigger = server_config(
        tmp_path,
        dovecot,
        smtp_sink,
        capacity=2,
    )
    in_january = lambda: JAN + timedelta(days=5)  # noqa: E731 - before the workshop
    report = run_cycle(bigger, in_january)
    assert report.promoted == 1
    assert statuses(bigger)["bernd.brandt@example.org"] == "confirmed"
    promotion = smtp_sink.message()
    assert smtp_sink.received[-1].rcpt_tos == ["bernd.brandt@example.org"]
    assert promotion["Subject"].startswith("Sie sind nachgerückt")
    assert "nachgerückt" in promotion.get_body(("plain",)).get_content()
    run_cycle(bigger, in_january)
    assert len(smtp_sink.received) == 3  # no second promotion mail


def test_late_waitlisted_move_up_only_by_hand(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """`late_policy = "waitlist"`: a late registration is queued, and neither a cancellation
    nor the promotion at the start of each cycle gives it a seat; `mailbot move-up` does."""
    from mailbot.admin.actions import move_up
    from mailbot.store.db import Store

    config = server_config(tmp_path, dovecot, smtp_sink, capacity=1, late_policy="waitlist")
    event = config.event_by_number(2)
    assert event is not None
    deadline = event.deadline
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    register(dovecot, "Larry Lang", "larry.lang@example.org", deadline + timedelta(hours=1))
    cancellation = "Hiermit melde ich mich von der 2. Werkstatt ab, leider bin ich verhindert."
    dovecot.append(
        mail(f"{cancellation}\n\nAnna Arndt", sender="Anna Arndt <anna.arndt@example.org>"),
        deadline + timedelta(hours=2),
    )
    before_the_workshop = lambda: deadline + timedelta(days=3)  # noqa: E731
    run_cycle(config, before_the_workshop)
    # Bernd (on time) moved up when Anna cancelled; Larry (late) stays queued.
    assert statuses(config) == {
        "anna.arndt@example.org": "cancelled",
        "bernd.brandt@example.org": "confirmed",
        "larry.lang@example.org": "waitlisted",
    }
    to_larry = [
        i for i, r in enumerate(smtp_sink.received) if "larry.lang@example.org" in r.rcpt_tos
    ]
    assert len(to_larry) == 1
    queued = smtp_sink.message(to_larry[0]).get_body(("plain",)).get_content()
    assert "Warteliste auf Platz 2" in queued  # behind Bernd, who was still waiting then
    assert "rücken nicht automatisch nach" in queued  # and told so

    dovecot.append(
        mail(f"{cancellation}\n\nBernd Brandt", sender="Bernd Brandt <bernd.brandt@example.org>"),
        deadline + timedelta(days=1),
    )
    report = run_cycle(config, before_the_workshop)
    assert report.promoted == 0 and "promoted" not in report.mails[0].outcome
    report = run_cycle(config, before_the_workshop)  # the seat is free: still nobody moves up
    assert report.promoted == 0
    assert statuses(config)["larry.lang@example.org"] == "waitlisted"
    assert sum("larry.lang@example.org" in r.rcpt_tos for r in smtp_sink.received) == 1
    sent = len(smtp_sink.received)

    store = Store(config.database_url)
    try:
        move_up(config, store, before_the_workshop, "larry.lang@example.org", event)
    finally:
        store.close()
    run_cycle(config, before_the_workshop)
    assert statuses(config)["larry.lang@example.org"] == "confirmed"
    assert len(smtp_sink.received) == sent + 1
    assert smtp_sink.received[-1].rcpt_tos == ["larry.lang@example.org"]
    assert smtp_sink.message()["Subject"].startswith("Sie sind nachgerückt")


def test_move_without_the_move_extension(config: Config, dovecot: Dovecot) -> None:
    from mailbot.inbox.imap import ImapInbox

    dovecot.append(mail("x"), JAN)
    dovecot.append(mail("y"), JAN)
    with ImapInbox(config.imap) as inbox:
        inbox.can_move = False  # as on servers without RFC 6851: COPY + \Deleted + UID EXPUNGE
        inbox.move([2], config.imap.processed_folder)
    assert dovecot.folder_uids("INBOX") == [1]
    assert dovecot.folder_uids(config.imap.processed_folder) == [1]


def test_parse_command_prints_the_contract(tmp_path: Path) -> None:
    import json

    path = tmp_path / "m.eml"
    path.write_bytes(mail(form("Anna Arndt", "anna.arndt@example.org")))
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "parse", str(path), str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert list(lines[0]) == [
        "file",
        "intent",
        "language",
        "events",
        "participants",
        "lunch",
        "role",
        "notes",
        "needs_review",
    ]
    assert lines[0]["intent"] == "register" and lines[0]["events"] == [2]
    assert lines[0]["participants"] == [
        {"name": "Anna Arndt", "email": "anna.arndt@example.org", "organisation": "Stadt Dortmund"}
    ]
    assert lines[0]["lunch"] is True


def _limited(config: Config, limit: int) -> Config:
    return config.model_copy(
        update={"imap": config.imap.model_copy(update={"max_message_bytes": limit})}
    )


def test_mail_over_the_size_limit_goes_to_review_unread(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    config = _limited(server_config(tmp_path, dovecot, smtp_sink), 100_000)
    big = mail(
        form("Anna Arndt", "anna.arndt@example.org") + "x" * 200_000,
        sender="Anna Arndt <anna.arndt@example.org>",
    )
    dovecot.append(big, JAN)
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    report = run_cycle(config)
    assert [(m.sender, m.state) for m in report.mails] == [
        ("anna.arndt@example.org", "review"),
        ("bernd.brandt@example.org", "done"),
    ]
    assert "too large to read" in report.mails[0].outcome
    assert dovecot.flags(config.imap.review_folder) == {1: set()}  # unread, for a human
    assert [r.rcpt_tos for r in smtp_sink.received] == [["bernd.brandt@example.org"]]


def test_a_large_mail_is_fetched_in_a_batch_of_its_own(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is held in memory whole: a mail over ALONE_BYTES (a registration with a big
    attachment) is fetched alone, and first come stays first served across the cut."""
    config = server_config(tmp_path, dovecot, smtp_sink, capacity=1)
    fetched: list[list[int]] = []
    real_fetch = ImapInbox.fetch

    def recording_fetch(self: ImapInbox, uids: Sequence[int]) -> list[FetchedMail]:
        fetched.append(list(uids))
        return real_fetch(self, uids)

    monkeypatch.setattr(ImapInbox, "fetch", recording_fetch)
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    message = EmailMessage()
    message["From"] = "Bernd Brandt <bernd.brandt@example.org>"
    message["To"] = config.organiser.address
    message["Subject"] = "Anmeldung 2. Werkstatt"
    message.set_content(form("Bernd Brandt", "bernd.brandt@example.org"))
    message.add_attachment(
        os.urandom(ALONE_BYTES), maintype="application", subtype="pdf", filename="cv.pdf"
    )
    dovecot.append(message.as_bytes(), JAN + timedelta(minutes=1))
    register(dovecot, "Clara Colditz", "clara.colditz@example.org", JAN + timedelta(minutes=2))
    report = run_cycle(config)
    assert [m for m in fetched if m] == [[1], [2], [3]]
    assert [(m.sender, m.state) for m in report.mails] == [
        ("anna.arndt@example.org", "done"),
        ("bernd.brandt@example.org", "done"),
        ("clara.colditz@example.org", "done"),
    ]
    assert statuses(config) == {
        "anna.arndt@example.org": "confirmed",
        "bernd.brandt@example.org": "waitlisted",
        "clara.colditz@example.org": "waitlisted",
    }


def test_size_limit_is_the_servers_size_to_the_byte(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """The limit is checked by SEARCH LARGER: a mail of exactly max_message_bytes (as the
    server counts them) is read; one byte more is not downloaded."""

    def crlf_mail(name: str, address: str, padding: int) -> bytes:
        lines = [
            f"From: {name} <{address}>",
            "To: werkstatt@example.org",
            "Subject: Anmeldung 2. Werkstatt",
            f"Message-ID: <{address}>",
            "",
            *form(name, address).encode("ascii", "replace").decode().splitlines(),
            *["x" * 70] * 50,
            "x" * padding,
        ]
        return "\r\n".join(lines).encode() + b"\r\n"

    # Two names and addresses of the same length: the second mail is one byte longer.
    at_limit = crlf_mail("Anna Arndt", "anna.arndt@example.org", 10)
    over = crlf_mail("Bert Brand", "bert.brand@example.org", 11)
    assert len(over) == len(at_limit) + 1
    first = dovecot.append(at_limit, JAN)
    dovecot.append(over, JAN + timedelta(hours=1))
    with dovecot.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        limit = imap.fetch([first], [b"RFC822.SIZE"])[first][b"RFC822.SIZE"]
        imap.logout()
    assert limit == len(at_limit)
    report = run_cycle(_limited(server_config(tmp_path, dovecot, smtp_sink), limit))
    assert [(m.sender, m.state) for m in report.mails] == [
        ("anna.arndt@example.org", "done"),
        ("bert.brand@example.org", "review"),
    ]
    assert "too large to read" in report.mails[1].outcome


def test_a_server_that_refuses_search_larger_is_asked_for_sizes(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Dovecot knows LARGER; a server or proxy that answers it with BAD must not stop the
    mail: the sizes are fetched instead (the refusal is injected, no real server refuses)."""
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    real_search = IMAPClient.search

    def refusing(self: IMAPClient, criteria: object = "ALL", charset: str | None = None) -> object:
        if "LARGER" in [str(c).upper() for c in criteria]:  # type: ignore[union-attr]
            raise IMAPClientError("SEARCH command error: BAD [b'Unknown search key']")
        return real_search(self, criteria, charset)

    monkeypatch.setattr(IMAPClient, "search", refusing)
    big = mail(
        form("Anna Arndt", "anna.arndt@example.org") + "x" * 200_000,
        sender="Anna Arndt <anna.arndt@example.org>",
    )
    dovecot.append(big, JAN)
    register(dovecot, "Bernd Brandt", "bernd.brandt@example.org", JAN + timedelta(hours=1))
    report = run_cycle(_limited(server_config(tmp_path, dovecot, smtp_sink), 100_000))
    assert [(m.sender, m.state) for m in report.mails] == [
        ("anna.arndt@example.org", "review"),
        ("bernd.brandt@example.org", "done"),
    ]
    assert "SEARCH LARGER refused" in caplog.text


def test_a_limit_beyond_imap_numbers_never_reaches_the_server(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    """Dovecot answers LARGER 2^64 with BAD: a huge max_message_bytes (the config allows it)
    means no mail is too large, and no SEARCH is sent for it."""
    register(dovecot, "Anna Arndt", "anna.arndt@example.org", JAN)
    report = run_cycle(_limited(server_config(tmp_path, dovecot, smtp_sink), 2**64))
    assert [(m.sender, m.state) for m in report.mails] == [("anna.arndt@example.org", "done")]
    assert "LARGER refused" not in caplog.text
