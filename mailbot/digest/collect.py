"""Gather what the organisers' digest shows, from the database, as plain data.

The digest is read by people who no longer read every mail: it leads with what needs a
human (mail in review, unanswered questions, bounces, replies that could not be sent,
errors), then the state of each event, then what changed since the last digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, select

from mailbot.config import Config, EventSettings
from mailbot.store.schema import (
    digests,
    health,
    messages,
    outbox,
    participants,
    registrations,
)


@dataclass(frozen=True)
class EventSummary:
    event: EventSettings
    confirmed: int
    waitlisted: int
    late: int
    cancelled: int
    days_to_deadline: int | None  # None once the deadline has passed
    history: list[tuple[date, int]]  # confirmed seats at the end of each day with a change

    @property
    def seats_left(self) -> int:
        return max(0, self.event.capacity - self.confirmed)


@dataclass(frozen=True)
class PersonRow:
    name: str | None
    email: str
    organisation: str | None
    event_id: str
    status: str
    lunch: bool | None
    role: str | None
    notes: str | None
    arrival: datetime
    updated_at: datetime
    forwarded_by: str | None = None


@dataclass(frozen=True)
class AttentionItem:
    kind: str  # review, question, bounce, failed_reply, error
    when: datetime
    who: str
    text: str


@dataclass
class DigestData:
    day: date
    since: datetime | None
    generated_at: datetime
    events: list[EventSummary] = field(default_factory=list)
    changes: list[PersonRow] = field(default_factory=list)
    attention: list[AttentionItem] = field(default_factory=list)

    @property
    def quiet(self) -> bool:
        """Nothing new and nothing to look at: the day a digest may be skipped."""
        return not self.changes and not self.attention


def people(conn: Connection, event_id: str | None = None) -> list[PersonRow]:
    """Everyone registered (any status), in queue order: the participant list and CSV."""
    query = (
        select(
            participants.c.name,
            participants.c.email,
            participants.c.organisation,
            registrations.c.event_id,
            registrations.c.status,
            registrations.c.lunch,
            registrations.c.role,
            registrations.c.notes,
            registrations.c.arrival,
            registrations.c.updated_at,
            messages.c.forwarded_by,
        )
        .join(participants, participants.c.id == registrations.c.participant_id)
        .outerjoin(messages, messages.c.id == registrations.c.message_row)
        .order_by(registrations.c.arrival, registrations.c.id)
    )
    if event_id is not None:
        query = query.where(registrations.c.event_id == event_id)
    return [PersonRow(*row) for row in conn.execute(query)]


def last_digest_time(conn: Connection) -> datetime | None:
    row = conn.execute(
        select(digests.c.created_at)
        .where(digests.c.skipped.is_(False))
        .order_by(digests.c.created_at.desc())
        .limit(1)
    ).first()
    return row.created_at if row else None


def collect(conn: Connection, config: Config, now: datetime) -> DigestData:
    since = last_digest_time(conn)
    everyone = people(conn)
    data = DigestData(day=now.astimezone(config.tz).date(), since=since, generated_at=now)
    data.events = [_summary(config, event, everyone, now) for event in config.events]
    data.changes = [p for p in everyone if since is None or p.updated_at > since]
    data.attention = _attention(conn, config, since)
    return data


def _summary(
    config: Config, event: EventSettings, everyone: list[PersonRow], now: datetime
) -> EventSummary:
    mine = [p for p in everyone if p.event_id == event.id]
    count = {
        s: sum(1 for p in mine if p.status == s)
        for s in ("confirmed", "waitlisted", "late", "cancelled")
    }
    local_now = now.astimezone(config.tz).date()
    deadline = event.deadline.astimezone(config.tz).date()
    days = (deadline - local_now).days if event.deadline >= now else None
    return EventSummary(
        event,
        count["confirmed"],
        count["waitlisted"],
        count["late"],
        count["cancelled"],
        days,
        _history(config, mine),
    )


def _history(config: Config, rows: list[PersonRow]) -> list[tuple[date, int]]:
    """Seats taken per day of arrival (confirmed now), cumulative, for the little chart."""
    per_day: dict[date, int] = {}
    for row in rows:
        if row.status == "confirmed":
            day = row.arrival.astimezone(config.tz).date()
            per_day[day] = per_day.get(day, 0) + 1
    history, total = [], 0
    for day in sorted(per_day):
        total += per_day[day]
        history.append((day, total))
    return history[-14:]


def _attention(
    conn: Connection, config: Config, since: datetime | None = None
) -> list[AttentionItem]:
    items: list[AttentionItem] = []
    for row in conn.execute(
        select(
            messages.c.arrival,
            messages.c.sender,
            messages.c.subject,
            messages.c.reason,
            messages.c.intent,
            messages.c.state,
        )
        .where(messages.c.state.in_(("review", "failed")), messages.c.resolved_at.is_(None))
        .order_by(messages.c.arrival)
    ):
        if row.state == "failed":
            kind = "error"
        elif row.intent == "question":
            kind = "question"
        else:
            kind = "review"
        text = f"„{row.subject or '(ohne Betreff)'}“ – {row.reason or ''}".strip(" –")
        items.append(AttentionItem(kind, row.arrival, row.sender or "?", text))
    for row in conn.execute(
        select(participants.c.email, participants.c.name, participants.c.bounced_at).where(
            participants.c.bounced_at.is_not(None)
        )
    ):
        items.append(
            AttentionItem(
                "bounce",
                row.bounced_at,
                row.email,
                f"Mail an {row.name or row.email} kam als unzustellbar zurück",
            )
        )
    for row in conn.execute(
        select(
            outbox.c.failed_at, outbox.c.recipients, outbox.c.last_error, outbox.c.purpose
        ).where(outbox.c.failed_at.is_not(None), outbox.c.purpose != "digest")
    ):
        who = ", ".join(json.loads(row.recipients))
        items.append(
            AttentionItem(
                "failed_reply",
                row.failed_at,
                who,
                f"Antwort nicht zustellbar: {row.last_error or ''}",
            )
        )
    for row in conn.execute(select(health).where(health.c.name.like("alert:%"))):
        if row.value and (since is None or row.at > since):
            items.append(AttentionItem("error", row.at, "mailbot", row.value))
    if (error := conn.execute(select(health).where(health.c.name == "last_error")).first()) and (
        error.value and (since is None or error.at > since)
    ):
        items.append(AttentionItem("error", error.at, "mailbot", f"Letzter Fehler: {error.value}"))
    order = {"error": 0, "failed_reply": 1, "bounce": 2, "question": 3, "review": 4}
    items.sort(key=lambda i: (order[i.kind], i.when))
    return items


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]
