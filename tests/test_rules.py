"""The registration rules on plain values: no server, no database, an explicit clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import make_config

from mailbot.config import Config
from mailbot.decide.rules import (
    EventState,
    Outcome,
    ReplyKind,
    Route,
    Status,
    decide,
    promote_waiting,
)
from mailbot.models import Intent, MailHeaders, ParsedMail, Participant

BERLIN = ZoneInfo("Europe/Berlin")
BEFORE = datetime(2018, 1, 10, 9, 0, tzinfo=BERLIN)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, capacity=2)


def states_for(config: Config) -> dict[str, EventState]:
    return {e.id: EventState(e) for e in config.events}


def registration(
    email: str,
    *,
    intent: Intent = Intent.REGISTER,
    events: list[int] | None = None,
    name: str | None = "Erika Mustermann",
    **headers: object,
) -> ParsedMail:
    return ParsedMail(
        intent=intent,
        events=[2] if events is None else events,
        participants=[Participant(name=name, email=email)],
        headers=MailHeaders(from_address=email, **headers),  # type: ignore[arg-type]
    )


def outcomes(decision) -> list[tuple[str, Outcome]]:  # type: ignore[no-untyped-def]
    return [(o.participant.email, o.outcome) for o in decision.outcomes]


def test_first_come_first_served_then_waiting_list(config: Config) -> None:
    states = states_for(config)
    results = [
        decide(registration(f"p{i}@example.org"), BEFORE + timedelta(minutes=i), config, states)
        for i in range(4)
    ]
    assert [r.outcomes[0].outcome for r in results] == [
        Outcome.CONFIRMED,
        Outcome.CONFIRMED,
        Outcome.WAITLISTED,
        Outcome.WAITLISTED,
    ]
    assert [r.outcomes[0].position for r in results[2:]] == [1, 2]
    assert states["werkstatt-2"].waitlist() == ["p2@example.org", "p3@example.org"]
    assert all(r.route is Route.PROCESSED and r.reply is ReplyKind.OUTCOMES for r in results)


def test_deadline_is_inclusive_and_judged_by_arrival(config: Config) -> None:
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    on_time = decide(registration("a@example.org"), deadline, config, states_for(config))
    late = decide(
        registration("b@example.org"), deadline + timedelta(seconds=1), config, states_for(config)
    )
    assert outcomes(on_time) == [("a@example.org", Outcome.CONFIRMED)]
    assert outcomes(late) == [("b@example.org", Outcome.LATE)]
    assert late.outcomes[0].status is Status.LATE
    # The same instant written in another zone is the same instant.
    utc_deadline = deadline.astimezone(ZoneInfo("UTC"))
    assert (
        outcomes(decide(registration("c@example.org"), utc_deadline, config, states_for(config)))[
            0
        ][1]
        is Outcome.CONFIRMED
    )


def test_late_policy_waitlist(tmp_path: Path) -> None:
    config = make_config(tmp_path, capacity=2, late_policy="waitlist")
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    result = decide(
        registration("b@example.org"), deadline + timedelta(days=1), config, states_for(config)
    )
    assert outcomes(result) == [("b@example.org", Outcome.WAITLISTED)]


def test_late_waitlisted_never_take_a_free_seat_by_themselves(tmp_path: Path) -> None:
    """`late_policy = "waitlist"` queues a late registration; a free seat must not confirm it
    on the next cycle (`promote_waiting` without event ids, as the pipeline calls it)."""
    config = make_config(tmp_path, capacity=30, late_policy="waitlist")
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    states = states_for(config)
    late = decide(registration("late@example.org"), deadline + timedelta(days=1), config, states)
    assert [(o.outcome, o.position, o.late) for o in late.outcomes] == [
        (Outcome.WAITLISTED, 1, True)  # `late`: its reply promises no automatic move-up
    ]
    assert promote_waiting(states, now=deadline + timedelta(days=2)) == []
    assert states["werkstatt-2"].seats["late@example.org"].status is Status.WAITLISTED
    assert states["werkstatt-2"].free_seats() == 30


def test_on_time_registration_is_not_held_back_by_late_ones(tmp_path: Path) -> None:
    """An on-time mail decided after a late one (a mail resolved from review keeps its arrival)
    takes a free seat at once: the late person ahead never moves up by itself, so waitlisting
    the on-time one would only confirm it a cycle later."""
    config = make_config(tmp_path, capacity=30, late_policy="waitlist")
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    states = states_for(config)
    decide(registration("late@example.org"), deadline + timedelta(days=1), config, states)
    on_time = decide(registration("early@example.org"), BEFORE, config, states)
    assert outcomes(on_time) == [("early@example.org", Outcome.CONFIRMED)]
    assert not on_time.outcomes[0].late
    assert states["werkstatt-2"].waitlist() == ["late@example.org"]


def test_cancellation_promotes_on_time_waiting_and_skips_late_ones(tmp_path: Path) -> None:
    config = make_config(tmp_path, capacity=2, late_policy="waitlist")
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    states = states_for(config)
    for i in range(4):  # p0, p1 confirmed; p2, p3 waiting, on time
        decide(registration(f"p{i}@example.org"), BEFORE + timedelta(minutes=i), config, states)
    for i in range(2):  # l0, l1 late, queued behind them
        decide(registration(f"l{i}@example.org"), deadline + timedelta(hours=i + 1), config, states)
    assert states["werkstatt-2"].waitlist() == [
        "p2@example.org",
        "p3@example.org",
        "l0@example.org",
        "l1@example.org",
    ]
    cancel_at = deadline + timedelta(days=1)
    promoted = []
    for who in ("p0", "p1", "p2"):
        result = decide(
            registration(f"{who}@example.org", intent=Intent.CANCEL), cancel_at, config, states
        )
        promoted.append([p.email for p in result.promotions])
    # p2 and p3 move up in queue order; the third freed seat stays free for the organiser.
    assert promoted == [["p2@example.org"], ["p3@example.org"], []]
    assert states["werkstatt-2"].free_seats() == 1
    assert promote_waiting(states, now=cancel_at) == []  # nor at the start of the next cycle
    assert states["werkstatt-2"].waitlist() == ["l0@example.org", "l1@example.org"]


def test_raised_capacity_promotes_on_time_ones_only(tmp_path: Path) -> None:
    small = make_config(tmp_path, capacity=1, late_policy="waitlist")
    deadline = small.event_by_number(2).deadline  # type: ignore[union-attr]
    states = states_for(small)
    decide(registration("p0@example.org"), BEFORE, small, states)
    decide(registration("p1@example.org"), BEFORE + timedelta(hours=1), small, states)
    decide(registration("late@example.org"), deadline + timedelta(hours=1), small, states)
    bigger = make_config(tmp_path, capacity=5, late_policy="waitlist")
    raised = {k: EventState(bigger.event_by_id(k), v.seats) for k, v in states.items()}  # type: ignore[arg-type]
    assert [p.email for p in promote_waiting(raised)] == ["p1@example.org"]
    assert raised["werkstatt-2"].waitlist() == ["late@example.org"]


def test_first_promotable_is_the_first_on_time_entry_of_the_queue(config: Config) -> None:
    """Checked against a recount with arrivals on both sides of the deadline."""
    import random

    from mailbot.decide.rules import Seat, is_late

    event = config.events[0]
    rng = random.Random(5)
    state = EventState(event)
    for step in range(1000):
        arrival = event.deadline + timedelta(minutes=rng.randrange(-20, 20))
        email = f"p{rng.randrange(30)}@example.org"
        state.put(Seat(email, rng.choice(list(Status)), arrival, step + 1))
        waiting = sorted(
            (s for s in state.seats.values() if s.status is Status.WAITLISTED),
            key=lambda s: (s.arrival, s.seq),
        )
        on_time = [s.email for s in waiting if not is_late(s.arrival, event)]
        assert state.first_promotable() == (on_time[0] if on_time else None)


def test_duplicate_takes_no_second_seat(config: Config) -> None:
    states = states_for(config)
    decide(registration("a@example.org"), BEFORE, config, states)
    again = decide(registration("a@example.org"), BEFORE + timedelta(hours=1), config, states)
    assert outcomes(again) == [("a@example.org", Outcome.ALREADY_REGISTERED)]
    assert states["werkstatt-2"].confirmed() == 1


def test_cancellation_frees_seat_and_promotes_first_waiting(config: Config) -> None:
    states = states_for(config)
    for i in range(4):
        decide(registration(f"p{i}@example.org"), BEFORE + timedelta(minutes=i), config, states)
    result = decide(
        registration("p0@example.org", intent=Intent.CANCEL),
        BEFORE + timedelta(days=1),
        config,
        states,
    )
    assert outcomes(result) == [("p0@example.org", Outcome.CANCELLED)]
    assert [(p.email, p.event_id) for p in result.promotions] == [("p2@example.org", "werkstatt-2")]
    assert states["werkstatt-2"].confirmed() == 2
    assert states["werkstatt-2"].waitlist() == ["p3@example.org"]


def test_cancellation_of_unknown_person_goes_to_review(config: Config) -> None:
    result = decide(
        registration("x@example.org", intent=Intent.CANCEL), BEFORE, config, states_for(config)
    )
    assert outcomes(result) == [("x@example.org", Outcome.NOT_REGISTERED)]
    assert result.route is Route.REVIEW


def test_raised_capacity_promotes_in_order(tmp_path: Path) -> None:
    small = make_config(tmp_path, capacity=1)
    states = states_for(small)
    for i in range(3):
        decide(registration(f"p{i}@example.org"), BEFORE + timedelta(minutes=i), small, states)
    bigger = make_config(tmp_path, capacity=2)
    raised = {k: EventState(bigger.event_by_id(k), v.seats) for k, v in states.items()}  # type: ignore[arg-type]
    assert [p.email for p in promote_waiting(raised)] == ["p1@example.org"]
    assert raised["werkstatt-2"].waitlist() == ["p2@example.org"]


def test_several_events_and_people_in_one_mail(config: Config) -> None:
    parsed = ParsedMail(
        intent=Intent.REGISTER,
        events=[2, 3],
        participants=[
            Participant(name="A B", email="a@example.org"),
            Participant(name="C D", email="c@example.org"),
        ],
        headers=MailHeaders(from_address="a@example.org"),
    )
    result = decide(parsed, BEFORE, config, states_for(config))
    assert len(result.outcomes) == 4
    assert {o.event_id for o in result.outcomes} == {"werkstatt-2", "werkstatt-3"}


@pytest.mark.parametrize(
    ("intent", "route", "reply"),
    [
        (Intent.AUTOREPLY, Route.PROCESSED, None),
        (Intent.BOUNCE, Route.PROCESSED, None),
        (Intent.OTHER, Route.LEAVE, None),
        (Intent.QUESTION, Route.REVIEW, ReplyKind.QUESTION_RECEIVED),
    ],
)
def test_mail_that_is_not_a_registration(
    config: Config, intent: Intent, route: Route, reply: ReplyKind | None
) -> None:
    result = decide(
        registration("a@example.org", intent=intent), BEFORE, config, states_for(config)
    )
    assert (result.route, result.reply, result.outcomes) == (route, reply, [])


def test_no_reply_headers_on_a_registration_mean_review_without_answer(config: Config) -> None:
    parsed = registration("a@example.org", no_reply_reason="Precedence: bulk")
    result = decide(parsed, BEFORE, config, states_for(config))
    assert result.route is Route.REVIEW and result.reply is None


def test_our_own_mail_is_left_alone(config: Config) -> None:
    result = decide(registration(config.organiser.address), BEFORE, config, states_for(config))
    assert result.route is Route.LEAVE and result.reply is None


def test_missing_name_asks_instead_of_confirming(config: Config) -> None:
    result = decide(registration("a@example.org", name=None), BEFORE, config, states_for(config))
    assert result.route is Route.REVIEW
    assert result.reply is ReplyKind.MISSING_DATA and result.missing == ["name"]
    assert result.outcomes == []


def test_unknown_workshop_number_asks(config: Config) -> None:
    result = decide(registration("a@example.org", events=[7]), BEFORE, config, states_for(config))
    assert result.reply is ReplyKind.MISSING_DATA and "event" in result.missing


def test_cancelling_someone_else_goes_to_review(config: Config) -> None:
    states = states_for(config)
    decide(registration("a@example.org"), BEFORE, config, states)
    parsed = ParsedMail(
        intent=Intent.CANCEL,
        events=[2],
        participants=[Participant(name="A", email="a@example.org")],
        headers=MailHeaders(from_address="prankster@example.net"),
    )
    result = decide(parsed, BEFORE + timedelta(hours=1), config, states)
    assert result.route is Route.REVIEW and result.outcomes == []
    assert states["werkstatt-2"].seats["a@example.org"].status is Status.CONFIRMED


def test_no_promotion_once_the_event_has_begun(config: Config) -> None:
    states = states_for(config)
    for i in range(3):
        decide(registration(f"p{i}@example.org"), BEFORE + timedelta(minutes=i), config, states)
    start = config.event_by_number(2).start  # type: ignore[union-attr]
    result = decide(registration("p0@example.org", intent=Intent.CANCEL), start, config, states)
    assert result.promotions == []
    assert states["werkstatt-2"].waitlist() == ["p2@example.org"]


def test_event_state_bookkeeping_matches_a_recount(config: Config) -> None:
    """`put` keeps counts and the queue incrementally; they must equal a recount at every step
    (same arrival times included, where the sequence number breaks the tie)."""
    import random

    from mailbot.decide.rules import Seat

    rng = random.Random(3)
    state = EventState(config.events[0])
    for step in range(2000):
        email = f"p{rng.randrange(60)}@example.org"
        arrival = BEFORE + timedelta(minutes=rng.randrange(40))
        state.put(Seat(email, rng.choice(list(Status)), arrival, step + 1))
        seats = state.seats.values()
        waiting = sorted(
            (s for s in seats if s.status is Status.WAITLISTED), key=lambda s: (s.arrival, s.seq)
        )
        assert state.confirmed() == sum(s.status is Status.CONFIRMED for s in seats)
        assert state.waitlist() == [s.email for s in waiting]
        assert state.first_waiting() == (waiting[0].email if waiting else None)
        assert all(state.position(s.email) == n for n, s in enumerate(waiting, 1))
        assert state.next_seq() == max(s.seq for s in seats) + 1
    copy = EventState(state.event, dict(state.seats))  # built from seats: the same answers
    assert copy.waitlist() == state.waitlist() and copy.confirmed() == state.confirmed()


def test_a_mail_naming_no_workshop_is_judged_for_the_next_one_not_yet_over(
    tmp_path: Path,
) -> None:
    """The rules' fallback for a mail without event numbers follows the arrival too."""
    shipped = make_config(tmp_path, capacity=2)
    events = [e.model_copy(update={"placeholder": e.number not in (2, 3)}) for e in shipped.events]
    config = shipped.model_copy(update={"events": events})  # the 3rd and 4th announced
    second = config.event_by_number(2)
    assert second is not None
    judged = [
        decide(registration(f"p{i}@example.org", events=[]), at, config, states_for(config))
        for i, at in enumerate((second.end - timedelta(hours=1), second.end + timedelta(days=1)))
    ]
    assert [[(o.event_id, o.outcome) for o in d.outcomes] for d in judged] == [
        [("werkstatt-2", Outcome.LATE)],
        [("werkstatt-3", Outcome.CONFIRMED)],
    ]
