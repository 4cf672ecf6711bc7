"""Read-only questions the admin commands ask the database: status, lists, the review queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from mailbot.store.schema import health as health_table
from mailbot.store.schema import mailbox_state, messages, outbox


@dataclass(frozen=True)
class Health:
    last_poll_at: datetime | None
    outbox_backlog: int
    failed_replies: int
    review_queue: int
    failing_mails: int
    notes: dict[str, tuple[str, datetime]]  # the worker's alerts and last error


def health(conn: Connection) -> Health:
    def count(query: Any) -> int:
        return int(conn.execute(query).scalar_one())

    last_poll = conn.execute(select(func.max(mailbox_state.c.last_poll_at))).scalar_one()
    return Health(
        last_poll_at=last_poll,
        outbox_backlog=count(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
        ),
        failed_replies=count(
            select(func.count()).select_from(outbox).where(outbox.c.failed_at.is_not(None))
        ),
        review_queue=count(
            select(func.count())
            .select_from(messages)
            .where(messages.c.state == "review", messages.c.resolved_at.is_(None))
        ),
        failing_mails=count(
            select(func.count()).select_from(messages).where(messages.c.state == "failed")
        ),
        notes={r.name: (r.value, r.at) for r in conn.execute(select(health_table))},
    )


def review_queue(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            select(messages)
            .where(messages.c.state == "review", messages.c.resolved_at.is_(None))
            .order_by(messages.c.arrival)
        )
    )


def message_row(conn: Connection, row_id: int) -> Any:
    return conn.execute(select(messages).where(messages.c.id == row_id)).first()


def outbox_entry(conn: Connection, reference: str) -> Any:
    """An outbox entry by its number or by the Message-ID of the reply."""
    condition = outbox.c.message_id == reference
    if reference.isdigit():
        condition = or_(condition, outbox.c.id == int(reference))
    if not reference.startswith("<"):
        condition = or_(condition, outbox.c.message_id == f"<{reference}>")
    return conn.execute(select(outbox).where(condition)).first()
