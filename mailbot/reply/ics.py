"""Calendar entries (.ics) for replies: one click puts the workshop into a participant's calendar.

Why METHOD:PUBLISH and not REQUEST: a REQUEST is a meeting invitation. Outlook, Gmail and
Apple Mail then show Accept/Decline buttons and mail an iMIP REPLY ("Angenommen: …") back to
the organiser, that is into the very inbox mailbot reads. A registration is already decided;
PUBLISH says "here is an event for your calendar", which every client offers to add without
asking the participant to answer.

The UID is derived from the person's address and the event id, so the confirmation, a later
promotion and the cancellation all speak of the same calendar entry, and the cancellation
(METHOD:CANCEL, STATUS:CANCELLED) removes the entry the confirmation added. SEQUENCE counts
minutes since 2000, so every later mail about the same entry carries a higher number, also when
someone cancels and registers again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from icalendar import Calendar, Event, vCalAddress, vText

from mailbot.config import Config, EventSettings
from mailbot.reply.context import (
    SEATED,
    ByIdentity,
    base_context,
    event_context,
    language_of,
    one_line,
)
from mailbot.reply.render import ReplyItem, ReplyRequest, environment, render_template

PRODID = "-//mailbot//registration replies//DE"
_SEQUENCE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CalendarFile:
    """One attachment: its file name, iTIP method and the iCalendar text."""

    filename: str
    method: str
    text: str


def calendar_uid(email: str, event_id: str, domain: str) -> str:
    """Stable per person and event: the same entry in every mail about it, and no address in it."""
    digest = hashlib.sha256(f"{email.lower()}\n{event_id}".encode()).hexdigest()[:32]
    return f"{digest}@{domain}"


def sequence(now: datetime) -> int:
    """Minutes since 2000: a later mail about the same entry always has the higher SEQUENCE."""
    return int((now - _SEQUENCE_EPOCH).total_seconds() // 60)


def calendar_files(request: ReplyRequest, config: Config, now: datetime) -> list[CalendarFile]:
    """The .ics files a reply carries: PUBLISH for a seat, CANCEL for a cancellation.

    One file per event. When one mail registers several people for the same event, the entry is
    the one of the person the mail answers first (the sender), so nobody gets duplicate entries.
    Placeholder events (date unknown) get none: a calendar entry with a made-up date is worse
    than no entry.
    """
    recipients = [address for _, address in request.recipients]
    chosen: dict[tuple[str, str], tuple[ReplyItem, EventSettings]] = {}
    # The sender's own entry first; nobody else's address goes into a file the reader gets.
    ordered = sorted(
        request.items,
        key=lambda i: recipients.index(i.email) if i.email in recipients else len(recipients),
    )
    for item in ordered:
        event = config.event_by_id(item.event_id)
        if event is None or event.placeholder or item.email not in recipients:
            continue
        if item.outcome.value in SEATED and item.position is None:
            method = "PUBLISH"
        elif item.outcome.value == "cancelled":
            method = "CANCEL"
        else:
            continue
        chosen.setdefault((event.id, method), (item, event))
    files = []
    for (event_id, method), (item, event) in chosen.items():
        text = calendar_text(event, item.email, item.name, method, request.language, config, now)
        prefix = "" if method == "PUBLISH" else "cancel-"
        files.append(CalendarFile(f"{prefix}{event_id}.ics", method, text))
    return files


def calendar_text(
    event: EventSettings,
    email: str,
    name: str | None,
    method: str,
    language: str,
    config: Config,
    now: datetime,
) -> str:
    """One VCALENDAR with the VTIMEZONE of the config's zone and one VEVENT.

    Only DTSTAMP, UID, SEQUENCE and (for a CANCEL) ATTENDEE differ between two participants'
    entries for the same event. The rest — the VTIMEZONE with its transitions, the rendered
    description, location and organiser, all folded to 75 octets — is built once per config,
    templates, event, method and language and kept (`_shell`); the per-person lines are
    serialised by icalendar itself and set in where icalendar's property order puts them
    (canonical DTSTAMP, UID, SEQUENCE first, then ATTENDEE before DESCRIPTION alphabetically).
    The result is byte for byte what `_full_calendar_text` builds (tests/test_reply_fast.py);
    building it all for every reply cost about 10 ms, mostly icalendar's line folding.
    """
    language = language_of(language, config)
    head, tail = _shell(event, method, language, config)
    return head + _person_lines(event, email, name, method, config, now) + tail


def _full_calendar_text(
    event: EventSettings,
    email: str,
    name: str | None,
    method: str,
    language: str,
    config: Config,
    now: datetime,
) -> str:
    """The whole calendar built by icalendar, nothing cached: the reference for `calendar_text`."""
    language = language_of(language, config)
    calendar = _calendar(event, method, language, config)
    vevent = calendar.walk("VEVENT")[0]
    _add_person(vevent, event, email, name, method, config, now)
    return calendar.to_ical().decode("utf-8")


def _calendar(event: EventSettings, method: str, language: str, config: Config) -> Calendar:
    """The parts of the calendar that are the same for every participant."""
    tz = config.tz
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    vevent = Event()
    vevent.add("dtstart", event.start.astimezone(tz))
    vevent.add("dtend", event.end.astimezone(tz))
    vevent.add("summary", event.title)
    vevent.add("location", f"{config.venue.name}, {config.venue.address}")
    vevent.add("status", "CONFIRMED" if method == "PUBLISH" else "CANCELLED")
    vevent.add("transp", "OPAQUE")
    organiser = vCalAddress(f"mailto:{config.organiser.address}")
    organiser.params["CN"] = vText(one_line(config.organiser.name))
    vevent.add("organizer", organiser)
    context = {**base_context(config, language), "event": event_context(event, config, language)}
    description = render_template(config, f"{language}/calendar.txt.j2", context).strip()
    vevent.add("description", description)
    calendar.add_component(vevent)
    first = event.start.astimezone(tz).date()
    calendar.add_missing_timezones(
        first_date=date(first.year, 1, 1), last_date=date(first.year + 1, 1, 1)
    )
    return calendar


def _add_person(
    vevent: Event,
    event: EventSettings,
    email: str,
    name: str | None,
    method: str,
    config: Config,
    now: datetime,
) -> None:
    vevent.add("uid", calendar_uid(email, event.id, config.organiser.domain))
    vevent.add("sequence", sequence(now))
    vevent.add("dtstamp", now.astimezone(UTC))
    if method == "CANCEL":
        # RFC 5546 wants the attendees being removed named in a CANCEL; that is only the reader.
        attendee = vCalAddress(f"mailto:{email}")
        if name:
            attendee.params["CN"] = vText(one_line(name))
        vevent.add("attendee", attendee)


def _person_lines(
    event: EventSettings,
    email: str,
    name: str | None,
    method: str,
    config: Config,
    now: datetime,
) -> str:
    """DTSTAMP, UID, SEQUENCE (and ATTENDEE) as icalendar writes them, folded, CRLF-ended.

    A PUBLISH (every confirmation) has only the first three, whose form RFC 5545 fixes: they
    are written here when the UID needs neither escaping nor folding (a domain of plain
    letters, digits, dots and hyphens, as every real one is), which saves building an
    icalendar Event per reply. Anything else goes through icalendar, and
    tests/test_reply_fast.py holds both ways to the uncached reference.
    """
    uid = calendar_uid(email, event.id, config.organiser.domain)
    if method == "PUBLISH" and len(uid) < 70 and _PLAIN_UID.fullmatch(uid):
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"DTSTAMP:{stamp}\r\nUID:{uid}\r\nSEQUENCE:{sequence(now)}\r\n"
    vevent = Event()
    _add_person(vevent, event, email, name, method, config, now)
    lines = vevent.to_ical().decode("utf-8")
    return lines[len("BEGIN:VEVENT\r\n") : -len("END:VEVENT\r\n")]


_PLAIN_UID = re.compile(r"[0-9a-f]{32}@[A-Za-z0-9.-]+")
_SHELLS: ByIdentity[tuple[str, str]] = ByIdentity()
_SPLIT_AT = "\r\nDESCRIPTION:"


def _shell(event: EventSettings, method: str, language: str, config: Config) -> tuple[str, str]:
    """The calendar without the per-person lines, split where they go; built once per config,
    template snapshot, event, method and language (`ByIdentity`: a reloaded config or new
    templates get a new shell, never a stale one)."""

    def build() -> tuple[str, str]:
        text = _calendar(event, method, language, config).to_ical().decode("utf-8")
        cut = text.index(_SPLIT_AT) + 2
        return text[:cut], text[cut:]

    return _SHELLS.get((config, environment(config), event), (method, language), build)
