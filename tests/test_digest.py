"""The organisers' digest: content, exactly one per day, catch-up after downtime, quiet days."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import (
    BERLIN,
    JAN,
    register,
    run_cycle,
    server_config,
    write_config_file,
)
from servers import Dovecot, SmtpSink

from mailbot.config import Config
from mailbot.digest import digest_if_due, due_day
from mailbot.pipeline import Pipeline
from mailbot.store.db import Store


@pytest.fixture
def config(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> Config:
    return server_config(
        tmp_path,
        dovecot,
        smtp_sink,
        capacity=2,
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2018, 1, day, hour, minute, tzinfo=BERLIN)


def send(config: Config, now: datetime, **kw: bool) -> str:
    store = Store(config.database_url)
    try:
        result = digest_if_due(config, store, now, **kw)
        asyncio.run(Pipeline(config, store, lambda: now).send())
        return result.status
    finally:
        store.close()


def test_due_only_after_the_configured_local_time(config: Config) -> None:
    assert config.digest.time == "07:30"
    assert due_day(config, at(15, 7, 29)) is None
    assert due_day(config, at(15, 7, 30)) == at(15, 7, 30).date()
    # 06:45 UTC is 07:45 in Berlin: the configured zone counts, not UTC.
    assert due_day(config, datetime(2018, 1, 15, 6, 45, tzinfo=UTC)) is not None


def test_digest_content_and_lists(config: Config, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    register(dovecot, "Jörg Weißenfels", "joerg@example.org", JAN)
    register(dovecot, "Anna Arndt", "anna@example.org", JAN + timedelta(hours=1))
    register(dovecot, "Bernd Brandt", "bernd@example.org", JAN + timedelta(hours=2))
    dovecot.append(
        email.message_from_string(
            "From: Hanna Horn <hanna@example.org>\n"
            "Subject: <script>alert(1)</script> Frage zur Werkstatt\n\n"
            "Guten Tag, gibt es bei der Werkstatt am 22. Februar einen Parkplatz beim ILS?\n"
        ).as_bytes(),
        JAN + timedelta(hours=3),
    )
    run_cycle(config, lambda: at(11, 9))
    smtp_sink.clear()

    assert send(config, at(11, 7, 45)) == "queued"
    (item,) = smtp_sink.received
    assert item.rcpt_tos == config.organiser.digest_to
    message = smtp_sink.message()
    assert message["Subject"].startswith("mailbot: Tagesübersicht 11.01.2018")
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",)).get_content()
    assert text.index("BITTE ANSEHEN") < text.index("VERANSTALTUNGEN") < text.index("NEU UND")
    assert "Offene Frage" in text and "Parkplatz" not in text.split("VERANSTALTUNGEN")[1]
    assert "angemeldet 2 von 2 · frei 0 · Warteliste 1" in text
    assert "noch 29 Tage bis zum Anmeldeschluss" in text
    assert "Jörg Weißenfels" in text
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'lang="de"' in html
    (attachment,) = [p for p in message.iter_attachments() if p.get_filename().endswith(".csv")]
    data = attachment.get_payload(decode=True)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel shows the umlauts
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Name", "E-Mail", "Organisation"]
    assert rows[1][:2] == ["Jörg Weißenfels", "joerg@example.org"]
    assert [r[3] for r in rows[1:]] == ["angemeldet", "angemeldet", "Warteliste"]


def test_exactly_one_digest_per_day_across_restarts(config: Config, smtp_sink: SmtpSink) -> None:
    assert send(config, at(11, 7, 0)) == "not_yet"
    assert send(config, at(11, 7, 30)) == "queued"
    # A restart (new store, new pipeline) the same day, and the cron firing again.
    assert send(config, at(11, 12, 0)) == "already"
    assert send(config, at(11, 23, 59)) == "already"
    assert len(smtp_sink.received) == 1
    # Down for three days: one digest on coming back, not one per missed day.
    assert send(config, at(15, 10, 0)) == "queued"
    assert send(config, at(15, 10, 5)) == "already"
    assert len(smtp_sink.received) == 2
    # Sending by hand sends now, in addition.
    assert send(config, at(15, 11, 0), force=True) == "queued"
    assert len(smtp_sink.received) == 3


def test_quiet_days_are_skipped_when_configured(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    config = server_config(tmp_path, dovecot, smtp_sink)
    assert not config.digest.skip_when_quiet  # the shipped default
    quiet = config.model_copy(
        update={"digest": config.digest.model_copy(update={"skip_when_quiet": True})}
    )
    assert send(quiet, at(11, 8)) == "skipped"
    assert send(quiet, at(11, 9)) == "already"
    register(dovecot, "Anna Arndt", "anna@example.org", at(11, 10))
    run_cycle(quiet, lambda: at(11, 10, 5))
    smtp_sink.clear()
    assert send(quiet, at(12, 8)) == "queued"
    assert "Anna Arndt" in smtp_sink.message().get_body(("plain",)).get_content()


def test_preview_command_prints_without_sending(
    config: Config, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    path = write_config_file(
        tmp_path / "preview.toml",
        imap_port=config.imap.port,
        smtp_port=config.smtp.port,
        password=config.imap.password,
        database=tmp_path / "p.db",
    )
    html = tmp_path / "digest.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "digest",
            "--preview",
            "--html",
            str(html),
            "--config",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Tagesübersicht" in result.stdout and html.read_text(encoding="utf-8").startswith(
        "<!DOCTYPE html>"
    )
    assert smtp_sink.received == []
