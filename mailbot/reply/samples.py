"""Sample data for every kind of reply: `mailbot check` renders them all, admins preview them.

Rendering each outcome for each event and language with plausible values (text, HTML and the
calendar entry) is what catches a typo in an admin's template before a participant sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

from icalendar import Calendar

from mailbot.config import Config
from mailbot.decide.rules import Outcome, ReplyKind
from mailbot.models import MailHeaders, ParsedMail, Participant
from mailbot.reply import SCENARIOS
from mailbot.reply.forward import question_forward
from mailbot.reply.message import build_message, compose_reply
from mailbot.reply.render import LANGUAGES, ReplyItem, ReplyRequest

SAMPLE_PERSON = ("Erika Mustermann", "erika.mustermann@example.org")
SAMPLE_COLLEAGUE = ("Max Mustermann", "max.mustermann@example.org")
SAMPLE_NOW = datetime(2018, 1, 15, 9, 30, tzinfo=UTC)


def sample_request(
    scenario: str, language: str, config: Config, event_id: str | None = None
) -> ReplyRequest:
    """One plausible reply of the named scenario (an outcome, a kind, or a list reply)."""
    event = config.event_by_id(event_id) if event_id else config.current_event
    if event is None:
        raise ValueError(f"unknown event {event_id!r}; known: {[e.id for e in config.events]}")
    name, email = SAMPLE_PERSON
    base = {
        "language": language,
        "recipients": [(name, email)],
        "greeting_name": name,
        "original_subject": "Anmeldung" if language == "de" else "Registration",
        "in_reply_to": "<sample-1@example.org>",
        "references": ("<sample-0@example.org>",),
    }
    if scenario in {o.value for o in Outcome}:
        outcome = Outcome(scenario)
        position = 2 if outcome is Outcome.WAITLISTED else None
        item = ReplyItem(name, email, event.id, outcome, position)
        if outcome is Outcome.PROMOTED:
            base.update(in_reply_to=None, references=(), original_subject="")
        return ReplyRequest(kind=ReplyKind.OUTCOMES, items=[item], **base)
    if scenario == "late_waitlisted":
        item = ReplyItem(name, email, event.id, Outcome.WAITLISTED, 1, late=True)
        return ReplyRequest(kind=ReplyKind.OUTCOMES, items=[item], **base)
    if scenario == "several_people":
        other_name, other = SAMPLE_COLLEAGUE
        base["recipients"] = [(name, email), (other_name, other)]
        items = [
            ReplyItem(name, email, event.id, Outcome.CONFIRMED),
            ReplyItem(other_name, other, event.id, Outcome.WAITLISTED, 1),
        ]
        return ReplyRequest(kind=ReplyKind.OUTCOMES, items=items, people_count=2, **base)
    if scenario == "series":
        items = [ReplyItem(name, email, e.id, Outcome.CONFIRMED) for e in config.events]
        return ReplyRequest(kind=ReplyKind.OUTCOMES, items=items, **base)
    kind = ReplyKind(scenario)
    missing = ["name", "event"] if kind is ReplyKind.MISSING_DATA else []
    return ReplyRequest(kind=kind, missing=missing, unknown_events=[7], **base)


def sample_forward(config: Config) -> EmailMessage | None:
    """The organisers' copy of a sample question."""
    name, email = SAMPLE_PERSON
    parsed = ParsedMail(
        intent="question",  # type: ignore[arg-type]
        participants=[Participant(name=name, email=email)],
        headers=MailHeaders(
            message_id="<sample-1@example.org>",
            from_address=email,
            from_name=name,
            subject="Frage zur Anreise",
        ),
    )
    raw = b"Subject: Frage\n\nGibt es einen Parkplatz in der N\xc3\xa4he?\n"
    return question_forward(parsed, raw, config, SAMPLE_NOW)


def sample_requests(config: Config) -> Iterator[tuple[str, ReplyRequest]]:
    """Every scenario for every event and language (events only where it makes a difference)."""
    for language in LANGUAGES:
        for event in config.events:
            for outcome in Outcome:
                label = f"{language}/{event.id}/{outcome.value}"
                yield label, sample_request(outcome.value, language, config, event.id)
        for scenario in SCENARIOS:
            if scenario not in {o.value for o in Outcome} and scenario != "forward":
                yield f"{language}/{scenario}", sample_request(scenario, language, config)


def warm_up(config: Config) -> None:
    """Compose a sample reply of each outcome in each language, and forget them.

    It does what the first replies of a poll would otherwise pay for on their way: jinja2
    and icalendar imported, the templates compiled (or loaded from the cache,
    reply/templating.py), babel's locale data loaded. A poll with a read-ahead helper does
    it while it waits for the helper's first batch (pipeline.py), so this cost leaves the
    path to the first reply.
    """
    for language in LANGUAGES:
        for outcome in Outcome:
            compose_reply(sample_request(outcome.value, language, config), config, SAMPLE_NOW)


def check_templates(config: Config) -> list[str]:
    """Render every sample as the finished mail; return one line per problem (empty when all render)."""
    problems: list[str] = []
    for label, request in sample_requests(config):
        try:
            message = build_message(request, config, SAMPLE_NOW)
            problems += [f"{label}: {p}" for p in _problems(message)]
        except Exception as exc:  # report every template problem, not just the first
            problems.append(f"{label}: {exc}")
    try:
        sample_forward(config)
    except Exception as exc:
        problems.append(f"forward: {exc}")
    return problems


def _problems(message: EmailMessage) -> list[str]:
    """An empty body or an unreadable calendar entry is as bad as a template error."""
    found = []
    for subtype in ("plain", "html"):
        part = message.get_body((subtype,))
        if part is None or not str(part.get_content()).strip():
            found.append(f"the {subtype} part renders empty")
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            try:
                Calendar.from_ical(part.get_content())
            except ValueError as exc:
                found.append(f"{part.get_filename()}: not valid iCalendar ({exc})")
    return found
