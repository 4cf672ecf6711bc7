"""Apply a request to the registrations and queue the replies it needs, in the caller's transaction.

The mail pipeline and the admin commands (`mailbot add`, `cancel`, `move-up`, `review`) share
this one place, so a registration taken by phone follows exactly the same rules, writes the
same rows and gets the same reply as one that came by mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from mailbot.config import Config
from mailbot.decide.rules import (
    Decision,
    EventState,
    Promotion,
    ReplyKind,
    Route,
    Status,
    decide,
    promote_waiting,
)
from mailbot.models import Intent, ParsedMail
from mailbot.reply.compose import promotion_request, reply_for
from mailbot.reply.forward import question_forward
from mailbot.reply.message import OutgoingMail, compose_reply
from mailbot.reply.render import ReplyRequest
from mailbot.store.db import Store, parsed_to_json

log = logging.getLogger("mailbot")


STATE_OF_ROUTE = {Route.PROCESSED: "done", Route.REVIEW: "review", Route.LEAVE: "ignored"}


@dataclass(frozen=True)
class MailPlace:
    """Where a mail came from: an IMAP folder (UIDVALIDITY + UID) or an imported file."""

    folder: str
    uidvalidity: int
    uid: int
    dedupe_key: str


class Registrar:
    def __init__(self, config: Config, store: Store, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.store = store
        self.clock = clock

    def decide(
        self,
        conn: Connection,
        parsed: ParsedMail,
        arrival: datetime,
        states: dict[str, EventState] | None = None,
    ) -> tuple[Decision, dict[str, EventState]]:
        """The rules' verdict; `states` (updated in place) saves reading them per mail."""
        if states is None:
            states = self.store.event_states(conn, self.config)
        return decide(parsed, arrival, self.config, states), states

    def apply(
        self,
        conn: Connection,
        decision: Decision,
        parsed: ParsedMail,
        states: dict[str, EventState],
        row_id: int | None,
        reply_key: str,
    ) -> None:
        """Write the statuses, queue the reply (once per key) and the promotion mails."""
        now = self.clock()
        self.store.apply_decision(conn, decision, parsed, states, row_id, now)
        if parsed.intent is Intent.BOUNCE:
            self.store.mark_bounced(conn, parsed.bounced_addresses, now)
        request = reply_for(decision, parsed, self.config)
        if request is not None:
            self.enqueue(conn, reply_key, row_id, f"reply:{decision.reply}", request)
        self.enqueue_promotions(conn, decision.promotions, states, row_id)

    def settle_mail(
        self,
        conn: Connection,
        parsed: ParsedMail,
        arrival: datetime,
        place: MailPlace,
        row: Any = None,
        *,
        reply: bool = True,
        forwarded_by: str | None = None,
        raw: bytes | None = None,
        states: dict[str, EventState] | None = None,
    ) -> tuple[int, Decision]:
        """Decide on one mail and record it with its outcome, changes and reply: one transaction."""
        now = self.clock()
        decision, states = self.decide(conn, parsed, arrival, states)
        if not reply:
            decision.reply = None
        values = {
            "message_id": parsed.headers.message_id,
            "arrival": arrival,
            "sender": parsed.headers.from_address,
            "subject": parsed.headers.subject[:2000],
            "intent": parsed.intent.value,
            "language": parsed.language,
            "state": STATE_OF_ROUTE[decision.route],
            "outcome": decision.summary,
            "reason": decision.reason,
            "parsed_json": parsed_to_json(parsed),
            "error": None,
            "forwarded_by": forwarded_by,
        }
        if row is None:
            row_id = self.store.record_message(
                conn,
                now,
                folder=place.folder,
                uidvalidity=place.uidvalidity,
                uid=place.uid,
                dedupe_key=place.dedupe_key,
                **values,
            )
        else:
            row_id = row.id
            self.store.update_message(conn, row_id, now, attempts=row.attempts + 1, **values)
        self.apply(conn, decision, parsed, states, row_id, f"reply:{row_id}")
        if decision.reply is ReplyKind.QUESTION_RECEIVED and raw is not None:
            self.forward_question(conn, parsed, raw, row_id)
        return row_id, decision

    def promote_free_seats(self, conn: Connection) -> list[Promotion]:
        """A raised capacity (or a seat freed by an admin) promotes people in queue order."""
        states = self.store.event_states(conn, self.config)
        now = self.clock()
        promotions = promote_waiting(states, now=now)
        for promotion in promotions:
            self.store.set_status(conn, promotion.email, promotion.event_id, Status.CONFIRMED, now)
        self.enqueue_promotions(conn, promotions, states, None)
        return promotions

    def enqueue_promotions(
        self,
        conn: Connection,
        promotions: list[Promotion],
        states: dict[str, EventState],
        row_id: int | None,
    ) -> None:
        for promotion in promotions:
            person = self.store.participant(conn, promotion.email)
            seat = states[promotion.event_id].seats[promotion.email]
            request = promotion_request(
                person.name if person else None,
                promotion.email,
                states[promotion.event_id].event,
                person.language if person else self.config.mailbot.default_language,
            )
            key = f"promote:{promotion.event_id}:{promotion.email}:{seat.arrival.isoformat()}"
            self.enqueue(conn, key, row_id, "promotion", request)
            log.info(
                "promoted %s for %s from the waiting list", promotion.email, promotion.event_id
            )

    def enqueue(
        self, conn: Connection, key: str, row_id: int | None, purpose: str, request: ReplyRequest
    ) -> bool:
        """Queue a reply to participants, minus anyone who already got too many today.

        The per-address cap is the last brake against a mail loop with an auto-responder
        that sets none of the headers RFC 3834 asks for.
        """
        now = self.clock()
        cap = self.config.mailbot.max_replies_per_address_per_day
        allowed = []
        for name, address in request.recipients:
            if self.store.replies_to(conn, address, now - timedelta(days=1)) >= cap:
                log.warning(
                    "no reply to %s: %d replies in 24 hours already (loop brake "
                    "mailbot.max_replies_per_address_per_day)",
                    address,
                    cap,
                )
                self.store.set_health(
                    conn, "alert:reply_cap", f"replies to {address} stopped after {cap} a day", now
                )
                continue
            allowed.append((name, address))
        if not allowed:
            return False
        if len(allowed) != len(request.recipients):
            request = replace(request, recipients=allowed)
        return self.enqueue_message(
            conn, key, row_id, purpose, compose_reply(request, self.config, now)
        )

    def forward_question(
        self, conn: Connection, parsed: ParsedMail, raw: bytes, row_id: int
    ) -> None:
        """The participant's question, quoted, to the organisers (Reply-To the participant)."""
        message = question_forward(parsed, raw, self.config, self.clock())
        if message is not None:
            self.enqueue_message(
                conn, f"forward:{row_id}", row_id, "forward", OutgoingMail.of(message)
            )

    def enqueue_message(
        self, conn: Connection, key: str, row_id: int | None, purpose: str, mail: OutgoingMail
    ) -> bool:
        return self.store.enqueue(
            conn,
            key=key,
            message_row=row_id,
            purpose=purpose,
            recipients=mail.recipients,
            message_id=mail.message_id,
            raw=mail.raw,
            now=self.clock(),
        )
