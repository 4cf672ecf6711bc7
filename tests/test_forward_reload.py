"""Forwarded registrations (the participant is answered, with the original date) and live
config reloads (a valid edit takes effect, a broken one is refused and the old one runs on)."""

from __future__ import annotations

import email
import logging
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
    run_cycle,
    server_config,
    shipped_config_text,
    statuses,
)
from servers import Dovecot, SmtpSink

from mailbot.config import Config, load_config
from mailbot.reload import ConfigWatcher
from mailbot.store.schema import messages

ORGANISER = "information@ils-forschung.example"  # one of [organiser] other_addresses


@pytest.fixture
def config(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> Config:
    return server_config(
        tmp_path,
        dovecot,
        smtp_sink,
        capacity=5,
    )


def test_inline_forward_registers_the_original_sender(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    body = (
        "zur Info, bitte eintragen.\n\nGruß Mona\n\n"
        "-------- Weitergeleitete Nachricht --------\n"
        "Betreff: Anmeldung 2. Werkstatt\n"
        "Datum: Fri, 09 Feb 2018 18:00:00 +0100\n"
        "Von: Anna Arndt <anna@example.org>\n"
        "An: Mona <information@ils-forschung.example>\n\n" + form("Anna Arndt", "anna@example.org")
    )
    # Forwarded three days after the deadline; the original was on time.
    dovecot.append(
        mail(body, sender=f"Mona <{ORGANISER}>", subject="WG: Anmeldung 2. Werkstatt"),
        deadline + timedelta(days=3),
    )
    run_cycle(config)
    assert statuses(config) == {"anna@example.org": "confirmed"}
    (item,) = smtp_sink.received
    assert item.rcpt_tos == ["anna@example.org"]  # the participant, not the organiser
    (row,) = db_rows(config, messages)
    assert row.forwarded_by == ORGANISER
    assert row.arrival.isoformat().startswith("2018-02-09T17:00")


@pytest.mark.parametrize("encoded", [False, True], ids=["rfc822", "base64-rfc822"])
def test_attached_forward(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, encoded: bool
) -> None:
    original = mail(
        form("Bernd Brandt", "bernd@example.org"),
        sender="Bernd Brandt <bernd@example.org>",
        date=JAN,
    )
    outer = EmailMessage()
    outer["From"] = ORGANISER
    outer["To"] = config.organiser.address
    outer["Subject"] = "Fwd: Anmeldung"
    outer.set_content("Anbei eine Anmeldung, die bei mir gelandet ist.")
    if encoded:  # what a few clients do, against RFC 2046
        outer.add_attachment(original, maintype="message", subtype="rfc822")
    else:
        outer.add_attachment(email.message_from_bytes(original, policy=policy.default))
    dovecot.append(outer.as_bytes(), JAN + timedelta(days=1))
    run_cycle(config)
    assert statuses(config) == {"bernd@example.org": "confirmed"}
    assert smtp_sink.received[0].rcpt_tos == ["bernd@example.org"]


def test_our_own_mail_without_a_forward_stays_alone(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(mail("Nur eine Notiz an mich selbst.", sender=ORGANISER, subject="Notiz"), JAN)
    run_cycle(config)
    assert smtp_sink.received == [] and dovecot.folder_uids("INBOX") == [1]


def test_valid_edit_is_reloaded_broken_edit_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(shipped_config_text(), encoding="utf-8")
    watcher = ConfigWatcher(load_config(path))
    assert watcher.reload_if_changed() is None  # nothing changed

    path.write_text(
        shipped_config_text(**{"poll_seconds = 60": "poll_seconds = 15"}), encoding="utf-8"
    )
    fresh = watcher.reload_if_changed(force=True)
    assert fresh is not None and fresh.mailbot.poll_seconds == 15

    caplog.set_level(logging.ERROR, logger="mailbot")
    path.write_text(
        shipped_config_text(**{"poll_seconds = 60": "poll_seconds = 'soon'"}), encoding="utf-8"
    )
    assert watcher.reload_if_changed(force=True) is None
    assert watcher.config.mailbot.poll_seconds == 15  # the previous config keeps running
    (line,) = [r.getMessage() for r in caplog.records]
    assert "config not reloaded" in line and "mailbot.poll_seconds" in line


def test_broken_template_edit_never_reaches_a_participant(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from helpers import REPO

    from mailbot.reply.message import build_message
    from mailbot.reply.samples import sample_requests

    shutil.copytree(REPO / "templates", tmp_path / "templates")
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(path)
    watcher = ConfigWatcher(config)
    label, request = next(iter(sample_requests(config)))

    def body() -> str:
        return build_message(request, watcher.config, JAN).get_body(("plain",)).get_content()

    before = body()
    confirmed = tmp_path / "templates" / "de" / "outcomes" / "confirmed.txt.j2"
    confirmed.write_text(
        confirmed.read_text(encoding="utf-8") + "{{ item.nmae }}\n", encoding="utf-8"
    )
    caplog.set_level(logging.ERROR, logger="mailbot")
    assert watcher.reload_if_changed(force=True) is None
    assert "templates not reloaded" in caplog.text and "confirmed.txt.j2" in caplog.text
    assert body() == before  # the running worker still renders with the old templates
    confirmed.write_text("{{ item.name }} ist dabei.\n", encoding="utf-8")
    assert watcher.reload_if_changed(force=True) is not None
    assert label and "ist dabei." in body()
