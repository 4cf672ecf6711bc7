"""The organisers' daily digest: exactly one per local day, also across restarts and downtime.

A row in `digests` keyed by the local date, and the outbox key `digest:<date>`, are written
in the same transaction, so a restart can neither send a day's digest twice nor lose it.
After downtime the worker catches up once — today's digest — not once per missed day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from email import policy

from sqlalchemy import Connection, insert, select

from mailbot.config import Config
from mailbot.digest.collect import DigestData, collect, people
from mailbot.digest.render import attach_lists, build_digest
from mailbot.store.db import Store
from mailbot.store.schema import digests

log = logging.getLogger("mailbot")


@dataclass(frozen=True)
class DigestResult:
    day: date
    status: str  # queued, skipped, already, not_yet
    data: DigestData | None = None


def due_day(config: Config, now: datetime) -> date | None:
    """Today's local date once the configured digest time has passed, else None."""
    local = now.astimezone(config.tz)
    if (local.hour, local.minute) >= (config.digest.hour, config.digest.minute):
        return local.date()
    return None


def render(config: Config, conn: Connection, now: datetime) -> tuple[DigestData, bytes]:
    data = collect(conn, config, now)
    message = build_digest(data, config)
    attach_lists(message, data, people(conn), config)
    return data, message.as_bytes(policy=policy.SMTP)


def digest_if_due(
    config: Config, store: Store, now: datetime, *, force: bool = False
) -> DigestResult:
    """Queue today's digest if it is time and none was made today (or always, with force)."""
    day = now.astimezone(config.tz).date() if force else due_day(config, now)
    if day is None:
        return DigestResult(now.astimezone(config.tz).date(), "not_yet")
    with store.transaction() as conn:
        done = conn.execute(select(digests).where(digests.c.day == day.isoformat())).first()
        if done is not None and not force:
            return DigestResult(day, "already")
        data, raw = render(config, conn, now)
        if data.quiet and config.digest.skip_when_quiet and not force:
            conn.execute(insert(digests).values(day=day.isoformat(), created_at=now, skipped=True))
            log.info("digest for %s skipped: nothing new", day)
            return DigestResult(day, "skipped", data)
        key = f"digest:{day.isoformat()}" if done is None else f"digest:{now.isoformat()}"
        store.enqueue(
            conn,
            key=key,
            message_row=None,
            purpose="digest",
            recipients=list(config.organiser.digest_to),
            message_id=_message_id(raw),
            raw=raw,
            now=now,
        )
        if done is None:
            conn.execute(
                insert(digests).values(
                    day=day.isoformat(), created_at=now, skipped=False, outbox_key=key
                )
            )
    log.info("digest for %s queued to %s", day, ", ".join(config.organiser.digest_to))
    return DigestResult(day, "queued", data)


def _message_id(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
        if not line:
            break
    return ""
