"""The data every reply template sees, built once per reply and shared by text, HTML and ics.

One context for all formats is what keeps the text part, the HTML part and the calendar entry
from telling a participant different things. Values that come from mails are flattened to one
line here, before any template (or header) sees them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, Generic, TypeVar

from babel.dates import format_date, format_time

from mailbot.config import Config, EventSettings

LANGUAGES = ("de", "en")
# A seat (or a kept seat) for this person: these items get the details and a calendar entry.
SEATED = frozenset({"confirmed", "promoted", "already_registered", "updated"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_FREE = frozenset({"kostenlos", "kostenfrei", "frei", "free", "free of charge", "0", "0 €"})


def one_line(value: str | None, limit: int = 200) -> str:
    """Collapse control characters (CR/LF above all) so mail text can never start a new header."""
    if not value:
        return ""
    return _CONTROL.sub(" ", value).strip()[:limit]


def language_of(requested: str, config: Config) -> str:
    return requested if requested in LANGUAGES else config.mailbot.default_language


def when(start: datetime, end: datetime, language: str) -> str:
    """How people read a date: "Donnerstag, 22. Februar 2018, 11:00–16:15 Uhr" or
    "Thursday, 22 February 2018, 11:00 am – 4:15 pm" (lower-case, as British style writes it)."""
    if language == "de":
        day = format_date(start, "EEEE, d. MMMM y", locale="de")
        return f"{day}, {format_time(start, 'HH:mm', locale='de')}–{format_time(end, 'HH:mm', locale='de')} Uhr"
    day = format_date(start, "EEEE, d MMMM y", locale="en")
    times = [format_time(t, "h:mm a", locale="en").lower() for t in (start, end)]
    return f"{day}, {times[0]} – {times[1]}"


def event_context(event: EventSettings, config: Config, language: str) -> dict[str, Any]:
    """An event as templates show it; a placeholder says "Termin folgt" instead of a made-up date."""
    tz = config.tz
    if event.placeholder:
        when_text = "Termin folgt" if language == "de" else "date to be announced"
        deadline = ""
    else:
        when_text = when(event.start.astimezone(tz), event.end.astimezone(tz), language)
        pattern = "d. MMMM y" if language == "de" else "d MMMM y"
        deadline = format_date(event.deadline.astimezone(tz), pattern, locale=language)
    return {
        "id": event.id,
        "number": event.number,
        "title": event.title,
        "when": when_text,
        "deadline": deadline,
        "placeholder": event.placeholder,
        "fee": event.fee,
        "free": event.fee.strip().lower() in _FREE,
        "lunch": event.lunch,
        "programme": list(event.programme),
        "schedule": [_scheduled(point) for point in event.programme],
    }


def _scheduled(point: str) -> tuple[str, str]:
    """A programme point as (time, what): ("11:00", "Begrüßung") from "11:00 Begrüßung", and
    ("", point) when it starts with no time. Split here once per config, not by the HTML
    template in every reply (two sandboxed calls per point, about half its rendering). A
    tuple, so a template can change nothing in it that the next reply would see."""
    time, _, what = point.partition(" ")
    return (time, what) if time[:1].isdigit() else ("", point)


def base_context(config: Config, language: str) -> dict[str, Any]:
    """What every template may use, whatever the reply: organiser, venue and the events.

    Built once per config and language (`_built_context`: the Babel date formatting alone cost
    about a sixth of composing a reply) and handed out as a fresh copy, down to every dict and
    list in it: callers add their keys, and a sandboxed template may even change a dict or a
    list it is given; neither may reach the next reply.
    """
    organiser, venue, events = _built_context(config, language)
    return {
        "language": language,
        "organiser": _copied(organiser),
        "venue": _copied(venue),
        "events": [_copied(e) for e in events],
    }


# One dict of the context and the keys whose values are lists (of strings: nothing deeper).
_Part = tuple[dict[str, Any], tuple[str, ...]]
_Built = tuple[_Part, _Part, list[_Part]]


def _part(values: dict[str, Any]) -> _Part:
    return values, tuple(k for k, v in values.items() if isinstance(v, list))


def _copied(part: _Part) -> dict[str, Any]:
    """A copy of the dict and of its lists (a dict comprehension testing every value cost
    five times as much)."""
    values, lists = part
    copy = values.copy()
    for key in lists:
        copy[key] = copy[key][:]
    return copy


Value = TypeVar("Value")


class ByIdentity(Generic[Value]):
    """Values built from objects (a config, a template snapshot, an event) and plain keys.

    The objects count by identity, and each entry holds them, so an id is never reused while
    its entry exists: a reloaded config or a new template snapshot (new objects) gets values of
    its own, never stale ones. At `limit` entries the cache starts afresh.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], Value]] = {}

    def get(
        self, objects: tuple[object, ...], keys: tuple[Hashable, ...], build: Callable[[], Value]
    ) -> Value:
        key = (*map(id, objects), *keys)
        found = self._entries.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], objects, strict=True)):
            return found[1]
        value = build()
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (objects, value)
        return value


_BUILT: ByIdentity[_Built] = ByIdentity()


def _built_context(config: Config, language: str) -> _Built:
    """Organiser, venue and events of `config` in `language`, built once per config (a config
    is frozen; this part depends on nothing else, not on the templates); only ever handed out
    as copies."""

    def build() -> _Built:
        organiser = config.organiser.model_dump()
        organiser["contact"] = organiser["contact_name"] or organiser["name"]
        return (
            _part(organiser),
            _part(config.venue.model_dump()),
            [_part(event_context(e, config, language)) for e in config.events],
        )

    return _BUILT.get((config,), (language,), build)
