"""Small builders shared by the tests: a config for given servers, and mails as bytes."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailbot.config import Config, parse_config
from mailbot.pipeline import CycleReport, Pipeline, utc_now
from mailbot.store.db import Store
from mailbot.store.schema import participants, registrations

REPO = Path(__file__).resolve().parents[1]
BERLIN = ZoneInfo("Europe/Berlin")
JAN = datetime(2018, 1, 10, 9, 0, tzinfo=BERLIN)
ORGANISER = "anmeldung@ils-forschung.example"


def shipped_config_data() -> dict[str, Any]:
    """The shipped config.toml, its templates folder made absolute (tests place it elsewhere)."""
    data = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    data["mailbot"]["templates"] = str(REPO / "templates")
    return data


def shipped_config_text(**replacements: str) -> str:
    """config.toml as text, with its templates folder made absolute and plain replacements."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def make_config(
    tmp_path: Path,
    *,
    imap_port: int = 143,
    smtp_port: int = 25,
    password: str = "secret",
    capacity: int | None = None,
    **mailbot: Any,
) -> Config:
    """The shipped config pointed at test servers and a database in tmp_path."""
    data = shipped_config_data()
    data["imap"].update(
        host="127.0.0.1",
        port=imap_port,
        security="none",
        username=ORGANISER,
        password=password,
        timeout_seconds=10,
    )
    data["smtp"].update(host="127.0.0.1", port=smtp_port, security="none", timeout_seconds=10)
    data["database"] = {"url": f"sqlite:///{tmp_path / 'mailbot.sqlite3'}"}
    data["mailbot"].update(templates=str(REPO / "templates"), **mailbot)
    if capacity is not None:
        for event in data["events"]:
            event["capacity"] = capacity
    return parse_config(data, tmp_path / "config.toml")


def server_config(tmp_path: Path, dovecot: Any, smtp_sink: Any, **overrides: Any) -> Config:
    """The shipped config pointed at this test's Dovecot and SMTP sink."""
    return make_config(
        tmp_path,
        imap_port=dovecot.port,
        smtp_port=smtp_sink.port,
        password=dovecot.password,
        **overrides,
    )


def mail(
    body: str,
    *,
    sender: str = "Erika Mustermann <erika.mustermann@example.org>",
    subject: str = "Anmeldung 2. Werkstatt",
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ORGANISER
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    if date is not None:
        message["Date"] = format_datetime(date)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def form(name: str, address: str, organisation: str = "Stadt Dortmund") -> str:
    return (
        "Sehr geehrte Damen und Herren,\n\nhiermit melde ich mich verbindlich zur 2. Werkstatt "
        f"am 22. Februar 2018 an.\n\nName: {name}\nOrganisation: {organisation}\n"
        f"E-Mail: {address}\nMittagsimbiss: ja\n\nMit freundlichen Grüßen\n{name}\n"
    )


def register(dovecot: Any, name: str, address: str, when: datetime, **kw: object) -> bytes:
    raw = mail(form(name, address), sender=f"{name} <{address}>", date=when, **kw)  # type: ignore[arg-type]
    dovecot.append(raw, when)
    return raw


def run_cycle(config: Config, clock: Callable[[], datetime] = utc_now) -> CycleReport:
    store = Store(config.database_url)
    try:
        return asyncio.run(Pipeline(config, store, clock).cycle())
    finally:
        store.close()


def db_rows(config: Config, table, *where):  # type: ignore[no-untyped-def]
    store = Store(config.database_url)
    with store.transaction() as conn:
        rows = conn.execute(select(table).where(*where)).all()
    store.close()
    return rows


def statuses(config: Config, event_id: str = "werkstatt-2") -> dict[str, str]:
    store = Store(config.database_url)
    with store.transaction() as conn:
        rows = conn.execute(
            select(participants.c.email, registrations.c.status)
            .join(participants, participants.c.id == registrations.c.participant_id)
            .where(registrations.c.event_id == event_id)
        ).all()
    store.close()
    return {r.email: r.status for r in rows}


def write_config_file(
    path: Path,
    *,
    imap_port: int,
    smtp_port: int,
    password: str | None,
    database: Path,
    **replacements: str,
) -> Path:
    """Write the shipped config.toml, pointed at test servers, to *path* (for CLI subprocesses).

    *replacements* are plain text replacements applied after the ports, the password (None:
    none in the file, e.g. to take it from MAILBOT_IMAP_PASSWORD) and the database URL.
    """
    text = shipped_config_text(
        **{
            "port = 143": f"port = {imap_port}",
            "port = 25": f"port = {smtp_port}",
            'password = "change-me"': f'password = "{password}"' if password is not None else "",
            'url = "sqlite:///mailbot.sqlite3"': f'url = "sqlite:///{database}"',
        }
    )
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"config.toml has no {old!r} to replace")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def server_config_file(
    tmp_path: Path,
    dovecot: Any,
    smtp_sink: Any,
    database: str = "mailbot.sqlite3",
    **replacements: str,
) -> Path:
    """tmp_path/config.toml pointed at this test's Dovecot and SMTP sink (for CLI subprocesses)."""
    return write_config_file(
        tmp_path / "config.toml",
        imap_port=dovecot.port,
        smtp_port=smtp_sink.port,
        password=dovecot.password,
        database=tmp_path / database,
        **replacements,
    )


def queue_replies(
    store: Store, first: int, count: int, at: datetime, raw: bytes | None = None
) -> None:
    """Replies first .. first+count-1 in the outbox, due at `at`, each with its Message-ID
    (and these bytes, if given)."""
    with store.transaction() as conn:
        for i in range(first, first + count):
            store.enqueue(
                conn,
                key=f"reply:{i}",
                message_row=None,
                purpose="reply:confirmed",
                recipients=[f"p{i}@example.org"],
                message_id=f"<{i}@example.org>",
                raw=raw
                or f"Message-ID: <{i}@example.org>\r\nSubject: {i}\r\n\r\nreply {i}\r\n".encode(),
                now=at,
            )


def assert_ends_with_its_parent(pid: int, what: str, seconds: float = 10) -> None:
    """The helper process `pid`, whose parent was just killed, ends within `seconds`; one that
    does not is killed here (not left behind by a failing test either) and fails the test."""
    import os
    import signal
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # ended; a zombie until init reaps it
        time.sleep(0.2)
    outlived = Path(f"/proc/{pid}").exists()
    if outlived:
        os.kill(pid, signal.SIGKILL)
    assert not outlived, f"the {what} outlived its parent"
