"""Render replies from the admins' jinja2 templates into ready-to-send `EmailMessage`s.

Pure: data in, message out. The templates run sandboxed with StrictUndefined, so an admin's
typo fails `mailbot check` instead of sending "Dear ," to a participant, and values that come
from mails are flattened to one line before they go near a header.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from importlib import resources
from pathlib import Path

from babel.dates import format_date, format_time
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from mailbot.config import Config, EventSettings
from mailbot.decide.rules import Outcome, ReplyKind

LANGUAGES = ("de", "en")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class TemplateProblem(Exception):
    """A template is missing or broken; the message names the file and line."""


@dataclass(frozen=True)
class ReplyItem:
    """One line of a reply: what happened to one person for one event."""

    name: str | None
    email: str
    event_id: str
    outcome: Outcome
    position: int | None = None


@dataclass
class ReplyRequest:
    """Everything a reply says, as plain data: the pipeline, the CLI preview and tests build these."""

    kind: ReplyKind
    language: str
    recipients: list[tuple[str | None, str]]
    original_subject: str = ""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    greeting_name: str | None = None
    items: list[ReplyItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    subject: str | None = None  # for mails that answer nothing (a promotion)


def one_line(value: str | None, limit: int = 200) -> str:
    """Collapse control characters (CR/LF above all) so mail text can never start a new header."""
    if not value:
        return ""
    return _CONTROL.sub(" ", value).strip()[:limit]


def default_templates_dir() -> Path:
    """The templates shipped with the package, or the repository's own in an editable install."""
    packaged = Path(str(resources.files("mailbot"))) / "_defaults" / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> SandboxedEnvironment:
    loaders = [FileSystemLoader(str(templates_dir))]
    fallback = default_templates_dir()
    if fallback.resolve() != templates_dir.resolve():
        loaders.append(FileSystemLoader(str(fallback)))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def environment(config: Config) -> SandboxedEnvironment:
    return _environment(config.templates_dir)


def event_context(event: EventSettings, config: Config, language: str) -> dict[str, object]:
    """How people read a date: "Donnerstag, 22. Februar 2018, 11:00–16:15 Uhr"."""
    start = event.start.astimezone(config.tz)
    end = event.end.astimezone(config.tz)
    if event.placeholder:
        when = "Termin folgt" if language == "de" else "date to be announced"
        deadline = ""
    elif language == "de":
        when = (
            f"{format_date(start, 'EEEE, d. MMMM y', locale='de')}, "
            f"{format_time(start, 'HH:mm', locale='de')}–{format_time(end, 'HH:mm', locale='de')} Uhr"
        )
        deadline = format_date(event.deadline.astimezone(config.tz), "d. MMMM y", locale="de")
    else:
        when = (
            f"{format_date(start, 'EEEE, d MMMM y', locale='en')}, "
            f"{format_time(start, 'h:mm a', locale='en')} – {format_time(end, 'h:mm a', locale='en')}"
        )
        deadline = format_date(event.deadline.astimezone(config.tz), "d MMMM y", locale="en")
    return {
        "id": event.id,
        "number": event.number,
        "title": event.title,
        "when": when,
        "deadline": deadline,
        "placeholder": event.placeholder,
        "fee": event.fee,
        "lunch": event.lunch,
        "programme": list(event.programme),
    }


def render_text(request: ReplyRequest, config: Config) -> str:
    language = (
        request.language if request.language in LANGUAGES else config.mailbot.default_language
    )
    events = {e.id: event_context(e, config, language) for e in config.events}
    items = [
        {
            "name": one_line(i.name),
            "email": i.email,
            "event": events[i.event_id],
            "outcome": i.outcome.value,
            "position": i.position,
        }
        for i in request.items
    ]
    attending = [
        i for i in items if i["outcome"] in ("confirmed", "promoted", "already_registered")
    ]
    context = {
        "kind": request.kind.value,
        "greeting_name": one_line(request.greeting_name),
        "items": items,
        "attending": attending,
        "missing": list(request.missing),
        "subject": one_line(request.original_subject),
        "organiser": config.organiser.model_dump(),
        "venue": config.venue.model_dump(),
    }
    name = f"{language}/reply.txt.j2"
    try:
        return environment(config).get_template(name).render(context)
    except TemplateError as exc:
        raise TemplateProblem(_where(exc, name)) from exc


def _where(exc: TemplateError, fallback: str) -> str:
    """Name the template file and line: jinja2 rewrites tracebacks to point into templates."""
    location = fallback
    lineno = getattr(exc, "lineno", None)
    filename = getattr(exc, "filename", None) or getattr(exc, "name", None)
    if filename and lineno:
        location = f"{filename}:{lineno}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
        if frames:
            location = f"{_relative(frames[-1].filename)}:{frames[-1].lineno}"
    return f"template {location}: {exc.message or exc}"


def _relative(filename: str) -> str:
    """`…/templates/de/outcomes/x.txt.j2` -> `de/outcomes/x.txt.j2`, the name admins know."""
    parts = Path(filename).parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] in LANGUAGES:
            return "/".join(parts[index:])
    return filename


def reply_subject(original: str, language: str) -> str:
    subject = one_line(original, 180)
    if not subject:
        return "Ihre Anmeldung" if language == "de" else "Your registration"
    if re.match(r"^(re|aw|antw)\s*:", subject, re.IGNORECASE):
        return subject
    return f"Re: {subject}"


def build_message(request: ReplyRequest, config: Config, now: datetime) -> EmailMessage:
    """The finished mail, with threading and the RFC 3834 headers that stop auto-reply loops."""
    body = render_text(request, config)
    message = EmailMessage()
    organiser = config.organiser
    message["From"] = Address(one_line(organiser.name), addr_spec=organiser.address)
    message["To"] = [Address(one_line(n), addr_spec=a) for n, a in request.recipients]
    if organiser.reply_to:
        message["Reply-To"] = organiser.reply_to
    message["Subject"] = one_line(request.subject, 180) or reply_subject(
        request.original_subject, request.language
    )
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=organiser.domain)
    if request.in_reply_to:
        message["In-Reply-To"] = one_line(request.in_reply_to, 998)
        refs = [one_line(r, 998) for r in request.references if r][-10:]
        if request.in_reply_to not in refs:
            refs.append(one_line(request.in_reply_to, 998))
        message["References"] = " ".join(refs)
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Loop"] = organiser.address
    message["Content-Language"] = request.language
    message.set_content(body, charset="utf-8")
    return message
