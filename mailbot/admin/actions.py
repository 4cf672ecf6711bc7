"""What admins change by hand: phone registrations, no-shows, promotions, resends, the review queue.

Every action goes through the `Registrar`, like a mail would: the same rules, the same rows,
the same replies in the outbox. Only the source differs, and it is recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from mailbot.admin.errors import AdminError
from mailbot.config import Config, EventSettings
from mailbot.decide.rules import Decision, Outcome, Route, Status
from mailbot.models import Intent, MailHeaders, ParsedMail, Participant, Role
from mailbot.registrar import Registrar
from mailbot.reply.compose import promotion_request
from mailbot.store.db import Store
from mailbot.store.schema import messages, outbox


@dataclass(frozen=True)
class PersonInput:
    email: str
    name: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class PersonCorrection:
    """What `mailbot review` corrects about the person a mail is about; None keeps the parsed value.

    Every field is optional: `--name` alone must fix a mail that only lacks the name, without
    the admin having to type the address the mail already gave.
    """

    email: str | None = None
    name: str | None = None
    organisation: str | None = None


# The `mailbot review` option that supplies each field the rules can find missing.
_FLAG_OF_MISSING = {"name": "--name", "email": "--email", "event": "--event"}


def find_event(config: Config, reference: str) -> EventSettings:
    """An event by id ("werkstatt-2") or by number ("2")."""
    event = config.event_by_id(reference)
    if event is None and reference.isdigit():
        event = config.event_by_number(int(reference))
    if event is None:
        known = ", ".join(f"{e.id} ({e.number})" for e in config.events)
        raise AdminError(f"unknown event {reference!r}; known: {known}")
    return event


def _address(text: str) -> str:
    """An address typed by an admin, lower-cased like the parser does; a typo is refused."""
    email = text.strip().lower()
    if "@" not in email or any(c.isspace() for c in email):
        raise AdminError(f"{text!r} is not an e-mail address")
    return email


def _request(
    intent: Intent,
    person: PersonInput,
    events: list[EventSettings],
    *,
    lunch: bool | None = None,
    role: str | None = None,
    notes: str | None = None,
    language: str = "de",
) -> ParsedMail:
    email = _address(person.email)
    return ParsedMail(
        intent=intent,
        language=language,
        events=[e.number for e in events],
        participants=[Participant(name=person.name, email=email, organisation=person.organisation)],
        lunch=lunch,
        role=Role(role) if role else None,
        notes=notes,
        headers=MailHeaders(from_address=email, from_name=person.name),
    )


def _settle(
    registrar: Registrar,
    parsed: ParsedMail,
    now: datetime,
    *,
    reply: bool,
    key: str,
    refuse: Callable[[Decision], str | None],
) -> Decision:
    """Decide and apply in one transaction, unless `refuse` names a reason not to.

    The refusal is raised inside the transaction, before anything is written: a command
    that ends in an error must not leave a reply in the outbox for the next poll to send.
    """
    with registrar.store.transaction() as conn:
        decision, states = registrar.decide(conn, parsed, now)
        problem = refuse(decision)
        if problem is not None:
            raise AdminError(problem)
        if not reply:
            decision.reply = None
        registrar.apply(conn, decision, parsed, states, None, key)
    return decision


def _unless_registered(decision: Decision) -> str | None:
    """`mailbot add` registers or fails: a blank name must not ask the person for it by mail."""
    if decision.route is Route.PROCESSED:
        return None
    if decision.missing:
        return f"not registered: missing {', '.join(decision.missing)}"
    return f"not registered: {decision.reason}"


def add(
    config: Config,
    store: Store,
    clock: Callable[[], datetime],
    person: PersonInput,
    events: list[EventSettings],
    *,
    lunch: bool | None = None,
    role: str | None = None,
    notes: str | None = None,
    language: str = "de",
    reply: bool = True,
) -> Decision:
    """A registration taken by phone or in person: same rules, arrival = now."""
    parsed = _request(
        Intent.REGISTER, person, events, lunch=lunch, role=role, notes=notes, language=language
    )
    return _settle(
        Registrar(config, store, clock),
        parsed,
        clock(),
        reply=reply,
        key=f"admin:add:{uuid.uuid4()}",
        refuse=_unless_registered,
    )


def cancel(
    config: Config,
    store: Store,
    clock: Callable[[], datetime],
    email: str,
    event: EventSettings,
    *,
    notify: bool = False,
) -> Decision:
    """Cancel a registration (a no-show, a phone call); the first person waiting moves up.

    Someone not registered (a typo, say) is refused before anything is queued: with
    `--notify` the next poll would otherwise mail a stranger about a cancellation.
    """

    def not_registered(decision: Decision) -> str | None:
        if any(o.outcome is Outcome.NOT_REGISTERED for o in decision.outcomes):
            return f"{email} has no active registration for {event.id}"
        return None

    parsed = _request(Intent.CANCEL, PersonInput(email), [event])
    return _settle(
        Registrar(config, store, clock),
        parsed,
        clock(),
        reply=notify,
        key=f"admin:cancel:{uuid.uuid4()}",
        refuse=not_registered,
    )


def move_up(
    config: Config, store: Store, clock: Callable[[], datetime], email: str, event: EventSettings
) -> None:
    """Promote one person by hand, even past the capacity: the organiser's call."""
    email = email.strip().lower()
    now = clock()
    registrar = Registrar(config, store, clock)
    with store.transaction() as conn:
        row = store.registration_row(conn, email, event.id)
        if row is None or row.status not in (Status.WAITLISTED.value, Status.LATE.value):
            status = row.status if row is not None else "not registered"
            raise AdminError(
                f"{email} is {status} for {event.id}; only waiting or late people move up"
            )
        store.set_status(conn, email, event.id, Status.CONFIRMED, now)
        person = store.participant(conn, email)
        request = promotion_request(person.name, email, event, person.language)
        registrar.enqueue(
            conn, f"promote:{event.id}:{email}:manual:{now.isoformat()}", None, "promotion", request
        )


def resend(store: Store, reference: str, now: datetime) -> str:
    """Send a reply again: a failed one is retried, a sent one is queued once more."""
    from mailbot.admin.queries import outbox_entry

    with store.transaction() as conn:
        entry = outbox_entry(conn, reference)
        if entry is None:
            raise AdminError(f"no reply {reference!r} in the outbox (use the number or Message-ID)")
        if entry.sent_at is None:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == entry.id)
                .values(failed_at=None, attempts=0, next_attempt_at=now, last_error=None)
            )
            return f"reply {entry.id} ({entry.message_id}) will be retried now"
        raw = store.reply_bytes(conn, [entry.id]).get(entry.id)
        if raw is None:  # only after a delete by hand; the claim marks such a reply failed
            raise AdminError(f"reply {entry.id} has no stored text to send again")
        store.enqueue(  # the loop brake counts it like any reply
            conn,
            key=f"resend:{entry.id}:{now.isoformat()}",
            message_row=entry.message_row,
            purpose=entry.purpose,
            recipients=json.loads(entry.recipients),
            message_id=entry.message_id,
            raw=raw,
            now=now,
        )
        return f"reply {entry.id} ({entry.message_id}) queued again to {', '.join(json.loads(entry.recipients))}"


def resolve_review(
    config: Config,
    store: Store,
    clock: Callable[[], datetime],
    row_id: int,
    *,
    dismiss: bool = False,
    intent: str | None = None,
    person: PersonCorrection | None = None,
    events: list[EventSettings] | None = None,
    reply: bool = True,
) -> Decision | None:
    """Settle a mail in review: dismiss it, or apply its parsed (or corrected) fields.

    Applying is refused (AdminError, nothing written, nothing queued) when the rules would
    still send the mail to review, e.g. `--accept` on a mail that lacks the name: settling it
    then would mark it done without a registration and ask the person a second time.
    """
    from mailbot.admin.queries import message_row

    now = clock()
    with store.transaction() as conn:
        row = message_row(conn, row_id)
    if row is None or row.state != "review" or row.resolved_at is not None:
        raise AdminError(f"mail {row_id} is not waiting in review (see `mailbot review`)")
    if dismiss:
        with store.transaction() as conn:
            conn.execute(
                update(messages)
                .where(messages.c.id == row_id)
                .values(resolved_at=now, resolution="dismissed", updated_at=now)
            )
        return None
    if not row.parsed_json:
        raise AdminError(f"mail {row_id} has no parsed fields; give --intent, --email and --event")
    parsed = ParsedMail.model_validate_json(row.parsed_json)
    changes: dict[str, object] = {"needs_review": None}
    if intent:
        changes["intent"] = Intent(intent)
    if events:
        changes["events"] = [e.number for e in events]
    if person is not None:
        changes["participants"] = [_corrected_person(parsed, person, row_id)]
    parsed = parsed.model_copy(update=changes)
    # The reviewer vouches for the mail: header-based silence no longer applies.
    parsed = parsed.model_copy(
        update={"headers": parsed.headers.model_copy(update={"no_reply_reason": None})}
    )
    registrar = Registrar(config, store, clock)
    with store.transaction() as conn:
        decision, states = registrar.decide(conn, parsed, row.arrival)
        if decision.route is Route.REVIEW:
            raise AdminError(_still_in_review(row_id, decision))
        if not reply:
            decision.reply = None
        registrar.apply(
            conn, decision, parsed, states, row_id, f"review:{row_id}:{now.isoformat()}"
        )
        conn.execute(
            update(messages)
            .where(messages.c.id == row_id)
            .values(
                resolved_at=now,
                resolution=f"applied: {decision.summary}",
                updated_at=now,
                outcome=decision.summary,
            )
        )
    return decision


def _corrected_person(parsed: ParsedMail, person: PersonCorrection, row_id: int) -> Participant:
    """The one person the mail is about once `--email/--name/--organisation` are applied.

    Without `--email` the parsed address stays; it must then be clear whose name is corrected,
    so a mail naming no address, or several people, asks for `--email`.
    """
    old = parsed.participants[0] if parsed.participants else None
    if person.email:
        email = _address(person.email)
    elif len(parsed.participants) > 1:
        raise AdminError(
            f"mail {row_id} names {len(parsed.participants)} people; "
            "give --email to say whom the correction is for"
        )
    elif old is None:
        raise AdminError(f"mail {row_id} names no e-mail address; give --email as well")
    else:
        email = old.email
    return Participant(
        email=email,
        name=person.name or (old.name if old else None),
        organisation=person.organisation or (old.organisation if old else None),
    )


def _still_in_review(row_id: int, decision: Decision) -> str:
    """Why a mail cannot be settled yet, and which option would fix it."""
    if decision.missing:
        flags = "/".join(_FLAG_OF_MISSING.get(field, field) for field in decision.missing)
        return (
            f"mail {row_id} is still missing: {', '.join(decision.missing)}; give {flags}, "
            "or close it with --dismiss (nothing was changed or sent)"
        )
    return (
        f"mail {row_id} would still need review ({decision.reason}); correct it with "
        "--email/--name/--event/--intent, or close it with --dismiss (nothing was changed or sent)"
    )
