"""Transport options on the real servers: IMAPS with certificate checks, SMTP AUTH, `mailbot run`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import mail, server_config, server_config_file
from servers import Dovecot, SmtpSink

from mailbot.inbox.imap import ImapInbox, InboxError
from mailbot.pipeline import Pipeline
from mailbot.store.db import Store

JAN = datetime(2018, 1, 10, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
FORM = "Hiermit melde ich mich zur 2. Werkstatt an.\n\nName: Anna Arndt\nE-Mail: anna.arndt@example.org\n"


def test_imaps_verifies_the_certificate(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    with Dovecot(tls=True) as server:
        config = server_config(tmp_path, server, smtp_sink)
        settings = config.imap.model_copy(update={"security": "ssl"})
        # The system store does not know the test CA: the connection must be refused.
        with pytest.raises(InboxError, match=r"(?i)certificate"):
            ImapInbox(settings).open()
        server.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
        config = config.model_copy(update={"imap": settings})
        store = Store(config.database_url)
        report = asyncio.run(Pipeline(config, store, imap_ssl_context=server.ssl_context()).cycle())
        store.close()
    assert [m.intent for m in report.mails] == ["register"]
    assert smtp_sink.received[0].rcpt_tos == ["anna.arndt@example.org"]


def test_smtp_auth_used_when_configured(tmp_path: Path, dovecot: Dovecot) -> None:
    with SmtpSink(username="bot@example.org", password="s3cret") as sink:
        config = server_config(tmp_path, dovecot, sink)
        config = config.model_copy(
            update={
                "smtp": config.smtp.model_copy(
                    update={"username": "bot@example.org", "password": "s3cret"}
                )
            }
        )
        dovecot.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
        store = Store(config.database_url)
        asyncio.run(Pipeline(config, store).cycle())
        store.close()
        assert sink.auth_attempts == [("bot@example.org", True)]
        assert len(sink.received) == 1


def test_smtp_down_keeps_reply_for_later(tmp_path: Path, dovecot: Dovecot) -> None:
    sink = SmtpSink()
    config = server_config(tmp_path, dovecot, sink)
    dovecot.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
    clock = [datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC"))]
    store = Store(config.database_url)
    pipeline = Pipeline(config, store, clock=lambda: clock[0])
    report = asyncio.run(pipeline.cycle())  # the sink is not started: connection refused
    assert report.send.retried == 1 and report.send.sent == 0
    with sink:
        sink.fail_next(1, code=451)
        report = asyncio.run(pipeline.send())
        assert report.sent == 0  # not due yet: backoff
        clock[0] = clock[0].replace(minute=5)
        report = asyncio.run(pipeline.send())
        assert (report.sent, report.retried) == (0, 1)  # 451: temporary
        clock[0] = clock[0].replace(minute=30)
        report = asyncio.run(pipeline.send())
        assert report.sent == 1 and len(sink.received) == 1
    store.close()


def test_run_worker_answers_and_stops_on_sigterm(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    config_file = server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        database="run.db",
        # Digest at midnight: today's is always due at start (the catch-up), whatever the
        # hour the test runs; at 07:30 it failed when run between midnight and 07:30.
        **{"poll_seconds = 60": "poll_seconds = 5", 'time = "07:30"': 'time = "00:00"'},
    )
    dovecot.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        smtp_sink.wait_for(2, timeout=30)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output
    # The answer to Anna, and today's digest (the catch-up at start) to the organisers.
    recipients = sorted(r.rcpt_tos[0] for r in smtp_sink.received)
    assert recipients == ["anna.arndt@example.org", "organisation@ils-forschung.example"]


def test_folders_follow_the_servers_separator(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """Many real servers separate levels with "."; config.toml keeps writing "/"."""
    with Dovecot(separator=".") as server:
        config = server_config(tmp_path, server, smtp_sink)
        server.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
        store = Store(config.database_url)
        asyncio.run(Pipeline(config, store).cycle())
        store.close()
        assert "INBOX.Processed" in server.folders()
        assert server.folder_uids("INBOX.Processed") == [1]


def test_idle_answers_without_waiting_for_the_poll(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    config_file = server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        database="idle.db",
        **{
            "poll_seconds = 60": "poll_seconds = 600",  # polling alone: ten minutes
            'time = "07:30"': 'time = "23:59"',
        },
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run", "--config", str(config_file)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 20
        while "IMAP IDLE on" not in log_path.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, log_path.read_text(encoding="utf-8")
            time.sleep(0.1)
        smtp_sink.clear()
        dovecot.append(mail(FORM, sender="Anna Arndt <anna.arndt@example.org>"), JAN)
        smtp_sink.wait_for(1, timeout=20)
        assert smtp_sink.received[0].rcpt_tos == ["anna.arndt@example.org"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8")
    assert process.returncode == 0, output
    assert "IMAP IDLE on INBOX" in output and "Traceback" not in output
