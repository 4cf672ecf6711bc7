"""The registration rules, as pure functions of (parsed mail, arrival time, event state, config).

Nothing here touches a server or the database: the store hands in a snapshot of each event,
the rules return what should change and what to tell whom, and the store applies it in one
transaction. That keeps first-come-first-served, deadlines and promotions testable with
plain values.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from mailbot.config import Config, EventSettings
from mailbot.models import Intent, ParsedMail, Participant


class Status(StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"
    LATE = "late"


class Outcome(StrEnum):
    """What happened to one person for one event; each has a paragraph template."""

    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    LATE = "late"
    ALREADY_REGISTERED = "already_registered"
    UPDATED = "updated"
    CANCELLED = "cancelled"
    NOT_REGISTERED = "not_registered"
    PROMOTED = "promoted"


class Route(StrEnum):
    """Where the mail goes in the mailbox once its outcome is committed."""

    PROCESSED = "processed"
    REVIEW = "review"
    LEAVE = "leave"  # not ours: stays in the inbox, unseen


class ReplyKind(StrEnum):
    """The frame of the reply mail; `outcomes` fills it for the per-person kinds."""

    OUTCOMES = "outcomes"
    MISSING_DATA = "missing_data"
    QUESTION_RECEIVED = "question_received"
    RECEIVED = "received"


@dataclass(frozen=True)
class Seat:
    """One person's registration for one event, as the rules see it."""

    email: str
    status: Status
    arrival: datetime
    seq: int = 0  # tie-break for equal arrival times: the order the seats were written


@dataclass
class EventState:
    """A snapshot of one event: who holds which status, in queue order.

    Seats change only through `put`, which keeps the confirmed count, the waiting list (sorted
    by arrival) and the highest sequence number up to date: the rules ask for them on every
    mail, and recounting all seats each time made a rush of N mails cost O(N²).
    """

    event: EventSettings
    seats: dict[str, Seat] = field(default_factory=dict)
    _confirmed: int = field(default=0, init=False, repr=False)
    _queue: list[tuple[datetime, int, str]] = field(default_factory=list, init=False, repr=False)
    _max_seq: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        seats, self.seats = self.seats, {}
        for seat in seats.values():
            self.put(seat)

    def put(self, seat: Seat) -> None:
        """Set one person's seat (new or changed)."""
        old = self.seats.get(seat.email)
        if old is not None:
            if old.status is Status.CONFIRMED:
                self._confirmed -= 1
            elif old.status is Status.WAITLISTED:
                key = (old.arrival, old.seq, old.email)
                del self._queue[bisect_left(self._queue, key)]
        self.seats[seat.email] = seat
        if seat.status is Status.CONFIRMED:
            self._confirmed += 1
        elif seat.status is Status.WAITLISTED:
            insort(self._queue, (seat.arrival, seat.seq, seat.email))
        self._max_seq = max(self._max_seq, seat.seq)

    def confirmed(self) -> int:
        return self._confirmed

    def waitlist(self) -> list[str]:
        return [email for _arrival, _seq, email in self._queue]

    def first_waiting(self) -> str | None:
        return self._queue[0][2] if self._queue else None

    def first_promotable(self) -> str | None:
        """The person a free seat goes to by itself: the head of the queue, unless it is late.

        A late registration queued under `late_policy = "waitlist"` waits for the organiser
        (`mailbot move-up`), never for a free seat. Its stored arrival is after the deadline,
        so no new field is needed; and since the queue is ordered by arrival, every late entry
        stands behind every on-time one: a late head means nobody left moves up by itself.
        The deadline is read from the event as configured now, so an extended deadline lets
        the entries it now covers move up again, in queue order.
        """
        if not self._queue:
            return None
        arrival, _seq, email = self._queue[0]
        return None if is_late(arrival, self.event) else email

    def position(self, email: str) -> int:
        """1-based place on the waiting list."""
        seat = self.seats[email]
        return bisect_left(self._queue, (seat.arrival, seat.seq, email)) + 1

    def next_seq(self) -> int:
        return self._max_seq + 1

    def free_seats(self) -> int:
        return max(0, self.event.capacity - self._confirmed)


@dataclass(frozen=True)
class PersonOutcome:
    participant: Participant
    event_id: str
    outcome: Outcome
    status: Status | None
    position: int | None = None  # waiting-list position, 1-based
    # Queued after the deadline (`late_policy = "waitlist"`): it never moves up by itself,
    # so the reply must not promise that it will.
    late: bool = False


@dataclass(frozen=True)
class Promotion:
    email: str
    event_id: str


@dataclass
class Decision:
    """Everything the store must apply and the reply stage must say, with the reason why."""

    route: Route
    reason: str
    reply: ReplyKind | None = None
    outcomes: list[PersonOutcome] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One readable line for the log, the demo table and the digest."""
        if not self.outcomes:
            return self.reason
        parts = []
        for o in self.outcomes:
            where = f" #{o.position}" if o.position else ""
            parts.append(f"{o.participant.email}: {o.outcome}{where} ({o.event_id})")
        parts += [f"promoted {p.email} ({p.event_id})" for p in self.promotions]
        return "; ".join(parts)


def decide(
    parsed: ParsedMail,
    arrival: datetime,
    config: Config,
    states: dict[str, EventState],
) -> Decision:
    """Decide what a mail means for the registrations. `states` is updated in place."""
    silent = _silence_reason(parsed, config)
    if silent is not None:
        return silent
    if parsed.intent is Intent.QUESTION:
        return Decision(Route.REVIEW, "question for the organisers", ReplyKind.QUESTION_RECEIVED)
    events, unknown = _events_of(parsed, arrival, config)
    missing = _missing_fields(parsed)
    if unknown:
        missing.append("event")
    if missing:
        return Decision(
            Route.REVIEW, f"missing: {', '.join(missing)}", ReplyKind.MISSING_DATA, missing=missing
        )
    if parsed.needs_review:
        return Decision(Route.REVIEW, parsed.needs_review, ReplyKind.RECEIVED)
    sender = (parsed.headers.from_address or "").lower()
    if parsed.intent is Intent.CANCEL and any(p.email != sender for p in parsed.participants):
        # Anyone can write "please cancel X": only X's own address cancels automatically.
        return Decision(Route.REVIEW, "cancellation for another address", ReplyKind.RECEIVED)
    if parsed.intent is Intent.UPDATE and len(parsed.participants) > 1:
        return Decision(Route.REVIEW, "replacement of one person by another", ReplyKind.RECEIVED)

    decision = Decision(Route.PROCESSED, parsed.intent.value, ReplyKind.OUTCOMES)
    for event in events:
        state = states[event.id]
        for person in parsed.participants:
            if parsed.intent is Intent.CANCEL:
                _cancel(decision, state, person)
            else:
                _register(decision, state, person, arrival, config, parsed.intent)
    if parsed.intent is Intent.CANCEL:
        decision.promotions.extend(promote_waiting(states, [e.id for e in events], arrival))
    if any(o.outcome is Outcome.NOT_REGISTERED for o in decision.outcomes):
        decision.route = Route.REVIEW
        decision.reason = "cancellation for someone not registered"
    return decision


def promote_waiting(
    states: dict[str, EventState], event_ids: list[str] | None = None, now: datetime | None = None
) -> list[Promotion]:
    """Fill free seats from the head of each waiting list (after a cancellation or a capacity rise).

    Nobody is promoted into an event that has already begun: the mail would come too late.
    Late registrations on the list stay where they are (`EventState.first_promotable`):
    only the organiser moves them up, so `late_policy = "waitlist"` never confirms one by itself.
    """
    promoted: list[Promotion] = []
    for event_id in event_ids if event_ids is not None else list(states):
        state = states[event_id]
        if now is not None and state.event.start <= now:
            continue
        while state.free_seats() > 0 and (email := state.first_promotable()) is not None:
            state.put(replace(state.seats[email], status=Status.CONFIRMED))
            promoted.append(Promotion(email, event_id))
    return promoted


def is_late(arrival: datetime, event: EventSettings) -> bool:
    """The deadline is inclusive and judged by the server's arrival time, in absolute time."""
    return arrival > event.deadline


def _silence_reason(parsed: ParsedMail, config: Config) -> Decision | None:
    """Mail we must never answer: auto-replies, bounces, our own mail, and mail not about us."""
    sender = (parsed.headers.from_address or "").lower()
    if sender and sender in config.own_addresses:
        return Decision(Route.LEAVE, "sent by one of our own addresses")
    if parsed.intent is Intent.BOUNCE:
        bounced = ", ".join(parsed.bounced_addresses) or "unknown address"
        return Decision(Route.PROCESSED, f"bounce for {bounced}")
    if parsed.intent is Intent.AUTOREPLY:
        return Decision(
            Route.PROCESSED, f"auto-reply ({parsed.headers.no_reply_reason or 'subject'})"
        )
    if parsed.intent is Intent.OTHER:
        if (parsed.needs_review or "").startswith("unreadable"):
            # It may well be a registration we cannot read: a human looks, nobody is answered.
            return Decision(Route.REVIEW, parsed.needs_review or "unreadable")
        return Decision(Route.LEAVE, "not about the events")
    if parsed.headers.no_reply_reason:
        # A real registration sent through a list or with auto headers: a human handles it.
        return Decision(Route.REVIEW, f"must not be answered: {parsed.headers.no_reply_reason}")
    return None


def _events_of(
    parsed: ParsedMail, arrival: datetime, config: Config
) -> tuple[list[EventSettings], list[int]]:
    numbers = parsed.events or [config.current_event_at(arrival).number]
    known = [e for n in numbers if (e := config.event_by_number(n)) is not None]
    unknown = [n for n in numbers if config.event_by_number(n) is None]
    return known, unknown


def _missing_fields(parsed: ParsedMail) -> list[str]:
    if not parsed.participants:
        return ["name", "email"]
    if parsed.intent is Intent.CANCEL:
        return []
    return ["name"] if any(not (p.name or "").strip() for p in parsed.participants) else []


def _register(
    decision: Decision,
    state: EventState,
    person: Participant,
    arrival: datetime,
    config: Config,
    intent: Intent,
) -> None:
    current = state.seats.get(person.email)
    if current is not None and current.status in (Status.CONFIRMED, Status.WAITLISTED):
        outcome = Outcome.UPDATED if intent is Intent.UPDATE else Outcome.ALREADY_REGISTERED
        position = state.position(person.email) if current.status is Status.WAITLISTED else None
        decision.outcomes.append(
            PersonOutcome(person, state.event.id, outcome, current.status, position)
        )
        return
    late = is_late(arrival, state.event)
    if late and config.mailbot.late_policy == "reject":
        state.put(Seat(person.email, Status.LATE, arrival, state.next_seq()))
        decision.outcomes.append(PersonOutcome(person, state.event.id, Outcome.LATE, Status.LATE))
        return
    # Under the "waitlist" policy a late registration never takes a seat by itself, neither
    # now nor when one frees up later (`promote_waiting`): it queues, and the organiser decides.
    # Late people already queued are no one an on-time registration would overtake: they
    # never move up by themselves, so a free seat goes to the on-time person straight away.
    if not late and state.free_seats() > 0 and state.first_promotable() is None:
        state.put(Seat(person.email, Status.CONFIRMED, arrival, state.next_seq()))
        decision.outcomes.append(
            PersonOutcome(person, state.event.id, Outcome.CONFIRMED, Status.CONFIRMED)
        )
        return
    state.put(Seat(person.email, Status.WAITLISTED, arrival, state.next_seq()))
    decision.outcomes.append(
        PersonOutcome(
            person,
            state.event.id,
            Outcome.WAITLISTED,
            Status.WAITLISTED,
            state.position(person.email),
            late,
        )
    )


def _cancel(decision: Decision, state: EventState, person: Participant) -> None:
    current = state.seats.get(person.email)
    if current is None or current.status not in (Status.CONFIRMED, Status.WAITLISTED):
        decision.outcomes.append(
            PersonOutcome(person, state.event.id, Outcome.NOT_REGISTERED, None)
        )
        return
    state.put(replace(current, status=Status.CANCELLED))
    decision.outcomes.append(
        PersonOutcome(person, state.event.id, Outcome.CANCELLED, Status.CANCELLED)
    )
