"""Tests of the test harness itself (tests/servers.py).

They pin down the server behaviour that mailbot's own tests rely on: INTERNALDATE comes back
timezone-aware, MOVE exists, BODY.PEEK[] leaves \\Seen alone, the SMTP sink sees the envelope, and
injected SMTP errors reach the client.  If one of these fails, the failure is in the harness or the
server, not in mailbot.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import aiosmtplib
import imapclient
import pytest
import servers
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from servers import Dovecot, SmtpSink

pytestmark = pytest.mark.servers

CET = timezone(timedelta(hours=1))  # Europe/Berlin in winter, without needing tzdata


def raw_mail(subject: str = "Anmeldung", body: str = "Hallo!\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Erika Mustermann <erika@example.org>"
    msg["To"] = "anmeldung@ils-forschung.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


# --- Dovecot ---------------------------------------------------------------------------------


def test_login_and_capabilities(dovecot: Dovecot) -> None:
    with dovecot.client() as imap:
        caps = imap.capabilities()
        assert b"IDLE" in caps
        assert b"MOVE" in caps
        assert b"UIDPLUS" in caps
        assert imap.normalise_times is False
        imap.logout()

    bad = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)
    with pytest.raises(LoginError):
        bad.login(dovecot.username, "wrong password")
    bad.shutdown()


def test_append_sets_internaldate_read_back_timezone_aware(dovecot: Dovecot) -> None:
    deadline = datetime(2024, 3, 2, 0, 0, tzinfo=CET)
    when = deadline - timedelta(seconds=30)  # 23:59:30 CET, just before the deadline

    uid = dovecot.append(raw_mail(), when)

    assert uid is not None
    assert dovecot.folder_uids() == [uid]
    with dovecot.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        internaldate = imap.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"]
        imap.logout()
    assert internaldate.tzinfo is not None
    assert internaldate == when  # the same instant, to the second
    assert internaldate < deadline
    # Dovecot keeps the instant, not the offset: it answers in the server's zone (Maildir keeps
    # INTERNALDATE as the file's mtime). Code under test must compare instants, never offsets.
    assert internaldate.astimezone(UTC) == datetime(2024, 3, 1, 22, 59, 30, tzinfo=UTC)


def test_append_refuses_naive_datetime(dovecot: Dovecot) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dovecot.append(raw_mail(), datetime(2024, 3, 1, 12, 0))


def test_create_folder_and_move(dovecot: Dovecot) -> None:
    first = dovecot.append(raw_mail("eins"), datetime(2024, 3, 1, 10, 0, tzinfo=CET))
    second = dovecot.append(raw_mail("zwei"), datetime(2024, 3, 1, 11, 0, tzinfo=CET))
    assert first is not None and second is not None

    with dovecot.client() as imap:
        assert imap.has_capability("MOVE")
        imap.create_folder("Anmeldungen/Verarbeitet")
        imap.select_folder("INBOX")
        imap.move([first], "Anmeldungen/Verarbeitet")
        imap.logout()

    assert "Anmeldungen/Verarbeitet" in dovecot.folders()
    assert dovecot.folder_uids("INBOX") == [second]
    moved = dovecot.folder_uids("Anmeldungen/Verarbeitet")
    assert len(moved) == 1
    with dovecot.client() as imap:
        imap.select_folder("Anmeldungen/Verarbeitet", readonly=True)
        envelope = imap.fetch(moved, ["ENVELOPE"])[moved[0]][b"ENVELOPE"]
        imap.logout()
    assert envelope.subject == b"eins"


def test_append_into_new_folder_with_flags(dovecot: Dovecot) -> None:
    uid = dovecot.append(
        raw_mail(), datetime(2024, 3, 1, tzinfo=CET), folder="Archiv", flags=[imapclient.SEEN]
    )
    assert uid is not None
    assert dovecot.flags("Archiv") == {uid: {"\\Seen"}}


def test_body_peek_does_not_set_seen(dovecot: Dovecot) -> None:
    peeked = dovecot.append(raw_mail("peek"), datetime(2024, 3, 1, tzinfo=CET))
    read = dovecot.append(raw_mail("read"), datetime(2024, 3, 1, tzinfo=CET))
    assert peeked is not None and read is not None

    with dovecot.client() as imap:
        imap.select_folder("INBOX")  # read-write, as mailbot does
        body = imap.fetch([peeked], ["BODY.PEEK[]"])[peeked][b"BODY[]"]
        assert b"Subject: peek" in body
        imap.fetch([read], ["BODY[]"])  # the non-PEEK form marks the message read
        imap.logout()

    assert dovecot.flags() == {peeked: set(), read: {"\\Seen"}}


def test_idle_reports_a_new_message(dovecot: Dovecot) -> None:
    with dovecot.client() as imap:
        imap.select_folder("INBOX")
        imap.idle()
        dovecot.append(raw_mail(), datetime(2024, 3, 1, tzinfo=CET))
        responses = imap.idle_check(timeout=5)
        imap.idle_done()
        imap.logout()
    assert (1, b"EXISTS") in responses


def test_restart_keeps_mail_and_port_and_drops_clients(dovecot: Dovecot) -> None:
    uid = dovecot.append(raw_mail(), datetime(2024, 3, 1, tzinfo=CET))
    port = dovecot.port
    imap = dovecot.client(timeout=5)
    imap.select_folder("INBOX")

    dovecot.restart()

    assert dovecot.running
    assert dovecot.port == port
    assert dovecot.folder_uids() == [uid]
    with pytest.raises((OSError, IMAPClient.AbortError, IMAPClient.Error)):
        imap.noop()  # the old connection died with the old server
    with contextlib.suppress(OSError):
        imap.shutdown()


def test_reset_empties_the_account(dovecot: Dovecot) -> None:
    dovecot.append(raw_mail(), datetime(2024, 3, 1, tzinfo=CET))
    dovecot.append(raw_mail(), datetime(2024, 3, 1, tzinfo=CET), folder="A/B")
    dovecot.reset()
    assert dovecot.folders() == ["INBOX"]
    assert dovecot.folder_uids() == []


def test_stop_leaves_no_listener_behind() -> None:
    with Dovecot() as server:
        port = server.port
        assert server.startup_seconds is not None and server.startup_seconds < 15
        directory = server.directory
    assert not directory.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_tls_server_with_self_signed_certificate() -> None:
    with Dovecot(tls=True) as server:
        with server.client() as imap:
            assert imap.has_capability("IMAP4REV1")
            imap.logout()
        # A client that trusts only the system CAs must refuse the self-signed certificate
        # (IMAPClient connects in its constructor).
        with pytest.raises(ssl.SSLCertVerificationError):
            IMAPClient(server.host, server.port, ssl=True, timeout=5)


def test_missing_dovecot_is_an_error_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda _name: None)
    monkeypatch.setattr(servers.os, "access", lambda _path, _mode: False)
    with pytest.raises(RuntimeError, match="install Debian package dovecot-imapd"):
        Dovecot()


# --- SMTP sink -------------------------------------------------------------------------------


def make_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "anmeldung@ils-forschung.example"
    msg["To"] = "erika@example.org"
    msg["Subject"] = "Ihre Anmeldung ist bestätigt"
    msg.set_content("Grüße aus Göttingen\n")
    return msg


def send(sink: SmtpSink, recipients: list[str], **kwargs: object) -> None:
    asyncio.run(
        aiosmtplib.send(
            make_message(),
            sender="bounces@ils-forschung.example",
            recipients=recipients,
            hostname=sink.host,
            port=sink.port,
            timeout=10,
            **kwargs,  # type: ignore[arg-type]
        )
    )


def test_smtp_sink_records_envelope_and_message(smtp_sink: SmtpSink) -> None:
    send(smtp_sink, ["erika@example.org", "archiv@ils-forschung.example"])

    (got,) = smtp_sink.received
    assert got.mail_from == "bounces@ils-forschung.example"
    assert got.rcpt_tos == ["erika@example.org", "archiv@ils-forschung.example"]
    assert got.login is None
    msg = smtp_sink.message(0)
    assert msg["Subject"] == "Ihre Anmeldung ist bestätigt"
    assert msg["To"] == "erika@example.org"  # the archive copy is envelope-only, like Bcc
    assert msg.get_content() == "Grüße aus Göttingen\n"

    smtp_sink.clear()
    assert smtp_sink.received == []


def test_smtp_sink_fail_next(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(2, code=451, text="4.3.0 try later")

    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            send(smtp_sink, ["erika@example.org"])
        assert info.value.code == 451
        assert "try later" in info.value.message
    assert smtp_sink.received == []

    send(smtp_sink, ["erika@example.org"])
    assert len(smtp_sink.received) == 1


def test_smtp_sink_fail_next_recipient(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, code=550, text="5.1.1 no such user", stage="RCPT")

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        send(smtp_sink, ["niemand@example.org"])
    assert [r.code for r in info.value.recipients] == [550]
    assert smtp_sink.pending_failures() == []


def test_smtp_sink_auth() -> None:
    with SmtpSink(username="mailbot", password="s3cret") as sink:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            send(sink, ["erika@example.org"])
        assert refused.value.code == 530

        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            send(sink, ["erika@example.org"], username="mailbot", password="wrong")

        send(sink, ["erika@example.org"], username="mailbot", password="s3cret")
        (got,) = sink.wait_for(1)
        assert got.login == "mailbot"
        # aiosmtplib may try more than one mechanism with the wrong password.
        *failed, accepted = sink.auth_attempts
        assert failed and all(attempt == ("mailbot", False) for attempt in failed)
        assert accepted == ("mailbot", True)


def test_smtp_sink_wait_for_times_out(smtp_sink: SmtpSink) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        smtp_sink.wait_for(1, timeout=0.2)
    assert time.monotonic() - started < 2
