"""`mailbot demo`: the whole pipeline on a fresh machine, with no mail server of the user's.

It starts mail-devel (an in-memory IMAP + SMTP server with a web view) on free loopback
ports, APPENDs the sample mails with their arrival times into the organiser's inbox, and runs
the real worker cycle — the same IMAP and SMTP code as production — against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import logging
import secrets
import socket
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from mailbot.config import Config, ConfigError, parse_config
from mailbot.pipeline import MailResult, Pipeline
from mailbot.reply.render import default_templates_dir
from mailbot.store.db import Store

log = logging.getLogger("mailbot")

MAILS_DIR = Path(__file__).with_name("mails")
DEMO_CAPACITY = 3


@dataclass(frozen=True)
class SampleMail:
    file: str
    raw: bytes
    arrival: datetime
    expect: str
    message_id: str | None


def sample_mails(directory: Path = MAILS_DIR) -> list[SampleMail]:
    manifest = tomllib.loads((directory / "manifest.toml").read_text(encoding="utf-8"))
    samples = []
    for entry in manifest["mail"]:
        raw = (directory / entry["file"]).read_bytes()
        message_id = email.message_from_bytes(raw, policy=policy.default).get("Message-ID")
        samples.append(
            SampleMail(
                entry["file"],
                raw,
                entry["arrival"],
                entry["expect"],
                str(message_id).strip() if message_id else None,
            )
        )
    return samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_config_data(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    """The user's config if there is one, else the defaults shipped with the package."""
    candidates = [path] if path is not None and path.exists() else []
    candidates += [
        default_templates_dir().parent / "config.toml",
        Path(__file__).resolve().parents[2] / "config.toml",
    ]
    for candidate in candidates:
        if candidate.exists():
            # Absolute: the demo's own config lives in a temporary folder, and a relative
            # "templates" next to a relative config.toml would be looked for there.
            return tomllib.loads(candidate.read_text(encoding="utf-8")), candidate.resolve()
    raise ConfigError("no config.toml found for the demo; pass --config PATH")


def demo_config(
    base: Path | None, imap_port: int, smtp_port: int, password: str, workdir: Path
) -> Config:
    data, source = base_config_data(base)
    data["imap"].update(host="127.0.0.1", port=imap_port, security="none", password=password)
    data["smtp"] = {
        "host": "127.0.0.1",
        "port": smtp_port,
        "security": "none",
        "timeout_seconds": 10,
    }
    data["database"] = {"url": f"sqlite:///{workdir / 'demo.sqlite3'}"}
    templates = (source.parent if source else Path.cwd()) / data.get("mailbot", {}).get(
        "templates", "templates"
    )
    data.setdefault("mailbot", {}).update(
        poll_seconds=5, templates=str(templates if templates.is_dir() else default_templates_dir())
    )
    for event in data["events"]:
        if not event.get("placeholder"):
            event["capacity"] = DEMO_CAPACITY
    # The sample workshop took place in 2018: the nightly retention purge of --keep-running
    # would erase the demo's registrations at once.
    data["privacy"] = {"retention_days": 100_000}
    return parse_config(data, workdir / "config.toml")


def deliver(config: Config, samples: list[SampleMail]) -> None:
    """APPEND each sample with its arrival time as INTERNALDATE, as a mail server would."""
    with IMAPClient(config.imap.host, port=config.imap.port, ssl=False, timeout=10) as client:
        client.login(config.imap.username, config.imap.password or "")
        for sample in samples:
            client.append(config.imap.folder, sample.raw, msg_time=sample.arrival)


def print_table(
    samples: list[SampleMail], results: list[MailResult], sent: list[tuple[str, str]]
) -> None:
    by_id = {r.message_id: r for r in results}
    rows = [("mail", "intent", "state", "what happened")]
    for sample in samples:
        result = by_id.get(sample.message_id)
        if result is None:
            rows.append((sample.file, "-", "-", "not handled"))
            continue
        rows.append((sample.file, result.intent, result.state, result.outcome))
    widths = [max(len(r[i]) for r in rows[:]) for i in range(3)]
    print()
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[n]) for n, cell in enumerate(row[:3])) + "  " + row[3])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 13)
    print(f"\n{len(sent)} replies sent:")
    for recipients, subject in sent:
        print(f"  to {recipients}: {subject}")


def _sent_replies(store: Store) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from mailbot.store.schema import outbox, outbox_bodies

    with store.transaction() as conn:
        rows = conn.execute(
            select(outbox.c.recipients, outbox_bodies.c.raw)
            .join(outbox_bodies, outbox_bodies.c.outbox_id == outbox.c.id)
            .where(outbox.c.sent_at.is_not(None))
            .order_by(outbox.c.id)
        ).all()
    replies = []
    for recipients, raw in rows:
        subject = email.message_from_bytes(raw, policy=policy.default).get("Subject", "")
        replies.append((", ".join(__import__("json").loads(recipients)), str(subject)))
    return replies


async def _demo(keep_running: bool, base: Path | None) -> int:
    from mail_devel.service import Service

    imap_port, smtp_port, http_port = _free_port(), _free_port(), _free_port()
    password = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="mailbot-demo-") as tmp:
        config = demo_config(base, imap_port, smtp_port, password, Path(tmp))
        argv = [
            "--host",
            "127.0.0.1",
            "--imap-port",
            str(imap_port),
            "--smtp-port",
            str(smtp_port),
            "--http-port",
            str(http_port),
            "--user",
            config.imap.username,
            "--password",
            password,
            "--multi-user",
        ]
        if not keep_running:
            argv.append("--no-http")
        service = await Service.init(Service.parse(argv))
        async with service.start():
            samples = sample_mails()
            await asyncio.to_thread(deliver, config, samples)
            print(
                f"Delivered {len(samples)} sample mails to {config.imap.username} "
                f"(IMAP 127.0.0.1:{imap_port}); capacity of the 2nd workshop set to {DEMO_CAPACITY}."
            )
            store = Store(config.database_url)
            pipeline = Pipeline(config, store)
            report = await pipeline.cycle()
            print_table(samples, report.mails, _sent_replies(store))
            if keep_running:
                print(
                    f"\nWeb view of all mailboxes: http://127.0.0.1:{http_port}/\n"
                    f"IMAP 127.0.0.1:{imap_port}, SMTP 127.0.0.1:{smtp_port}, "
                    f"user {config.imap.username}, password {password}\n"
                    "mailbot keeps polling every 5 s: send a mail to the organiser in the web view "
                    "and watch the answer arrive. Ctrl-C stops."
                )
                from mailbot.worker import run_worker

                await run_worker(pipeline)
            store.close()
    return 0


def run_demo(keep_running: bool = False, base_config: Path | None = None) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_demo(keep_running, base_config))
    return 130
