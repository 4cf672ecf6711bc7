"""Data protection: erase one person on request, and everyone's data after the retention period.

The organiser is a German institute (GDPR): personal data is kept only as long as the event
needs it. What remains after erasure is an anonymous count per event and status, and an audit
line saying what was erased — without the address itself.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, or_, select, update

from mailbot.config import Config
from mailbot.store.db import Store, reply_log_hash
from mailbot.store.schema import (
    anonymous_counts,
    audit_log,
    messages,
    outbox,
    participants,
    registrations,
    reply_log,
)

log = logging.getLogger("mailbot")

_SCRUBBED = {
    "sender": None,
    "subject": None,
    "parsed_json": None,
    "message_id": None,
    "outcome": "(erased)",
    "reason": None,
    "error": None,
    "resolution": None,
    "forwarded_by": None,
}


@dataclass
class Erased:
    participants: int = 0
    registrations: int = 0
    mails: int = 0
    replies: int = 0

    def __str__(self) -> str:
        return (
            f"{self.participants} participants, {self.registrations} registrations, "
            f"{self.mails} mails, {self.replies} replies"
        )


def address_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]


def _count_anonymously(conn: Connection, event_id: str, status: str) -> None:
    where = (anonymous_counts.c.event_id == event_id) & (anonymous_counts.c.status == status)
    done = conn.execute(
        update(anonymous_counts).where(where).values(count=anonymous_counts.c.count + 1)
    )
    if done.rowcount == 0:
        conn.execute(insert(anonymous_counts).values(event_id=event_id, status=status, count=1))


def _erase_participant(conn: Connection, person_id: int, email: str, erased: Erased) -> None:
    for reg in conn.execute(
        select(registrations.c.event_id, registrations.c.status).where(
            registrations.c.participant_id == person_id
        )
    ):
        _count_anonymously(conn, reg.event_id, reg.status)
        erased.registrations += 1
    conn.execute(delete(registrations).where(registrations.c.participant_id == person_id))
    conn.execute(delete(participants).where(participants.c.id == person_id))
    erased.participants += 1
    pattern = f"%{email}%"
    result = conn.execute(
        update(messages)
        .where(
            or_(
                messages.c.sender == email,
                messages.c.parsed_json.like(pattern),
                messages.c.outcome.like(pattern),
            )
        )
        .values(**_SCRUBBED)
    )
    erased.mails += int(result.rowcount or 0)
    result = conn.execute(delete(outbox).where(outbox.c.recipients.like(f'%"{email}"%')))
    erased.replies += int(result.rowcount or 0)


def _audit(conn: Connection, now: datetime, action: str, detail: str) -> None:
    conn.execute(insert(audit_log).values(at=now, action=action, detail=detail))


def forget(store: Store, email: str, now: datetime) -> Erased:
    """Erase everything mailbot stores about one address (Art. 17 GDPR)."""
    email = email.strip().lower()
    erased = Erased()
    with store.transaction() as conn:
        person = conn.execute(
            select(participants.c.id).where(participants.c.email == email)
        ).first()
        if person is not None:
            _erase_participant(conn, person.id, email, erased)
        else:
            # Someone who never registered may still have written (a question, a bounce).
            pattern = f"%{email}%"
            result = conn.execute(
                update(messages)
                .where(or_(messages.c.sender == email, messages.c.parsed_json.like(pattern)))
                .values(**_SCRUBBED)
            )
            erased.mails += int(result.rowcount or 0)
            result = conn.execute(delete(outbox).where(outbox.c.recipients.like(f'%"{email}"%')))
            erased.replies += int(result.rowcount or 0)
        conn.execute(delete(reply_log).where(reply_log.c.address_hash == reply_log_hash(email)))
        _audit(conn, now, "forget", f"address #{address_hash(email)}: erased {erased}")
    log.info("forgot address #%s: erased %s", address_hash(email), erased)
    return erased


def purge_expired(config: Config, store: Store, now: datetime) -> Erased:
    """Erase the personal data of events that ended more than retention_days ago."""
    keep = timedelta(days=config.privacy.retention_days)
    expired = [e.id for e in config.events if e.end + keep < now]
    erased = Erased()
    with store.transaction() as conn:  # the loop brake looks back one day; keep two
        store.prune_reply_log(conn, now - timedelta(days=2))
    if not expired:
        return erased
    with store.transaction() as conn:
        rows = conn.execute(
            select(registrations.c.id, registrations.c.event_id, registrations.c.status).where(
                registrations.c.event_id.in_(expired)
            )
        ).all()
        for row in rows:
            _count_anonymously(conn, row.event_id, row.status)
        conn.execute(delete(registrations).where(registrations.c.event_id.in_(expired)))
        erased.registrations = len(rows)
        still_registered = select(registrations.c.participant_id)
        orphans = conn.execute(
            select(participants.c.id, participants.c.email).where(
                participants.c.id.not_in(still_registered)
            )
        ).all()
        for person in orphans:
            _erase_participant(conn, person.id, person.email, erased)
        cutoff = now - keep
        result = conn.execute(
            update(messages)
            .where(messages.c.arrival < cutoff, messages.c.sender.is_not(None))
            .values(**_SCRUBBED)
        )
        erased.mails += int(result.rowcount or 0)
        result = conn.execute(delete(outbox).where(outbox.c.created_at < cutoff))
        erased.replies += int(result.rowcount or 0)
        if erased.registrations or erased.participants or erased.mails or erased.replies:
            _audit(conn, now, "retention", f"events {', '.join(expired)}: erased {erased}")
    if erased.registrations or erased.participants or erased.mails:
        log.info("retention purge (%s days): erased %s", config.privacy.retention_days, erased)
    return erased
