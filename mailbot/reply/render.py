"""Render replies from the admins' jinja2 templates: one context, a text and an HTML body.

Pure: data in, strings out. The templates run sandboxed with StrictUndefined, so an admin's
typo fails `mailbot check` instead of sending "Dear ," to a participant; `.html.j2` templates
autoescape, so a name like "<script>" arrives as text. Each outcome's paragraph is written once
(`outcomes/<outcome>.txt.j2`), rendered to a string here and placed into both bodies, so the
text part and the HTML part can never say different things.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.config import Config
from mailbot.decide.rules import Outcome, ReplyKind
from mailbot.reply.context import (
    LANGUAGES,
    SEATED,
    base_context,
    language_of,
    one_line,
)

if TYPE_CHECKING:  # jinja2 itself comes with the first template (reply/templating.py)
    from jinja2 import TemplateError

    from mailbot.reply.templating import SnapshotEnvironment

__all__ = [
    "LANGUAGES",
    "ReplyItem",
    "ReplyRequest",
    "TemplateProblem",
    "environment",
    "one_line",
    "render_bodies",
    "render_template",
    "reply_context",
]


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
    late: bool = False  # a late waiting-list place: it moves up only by the organiser's hand


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
    unknown_events: list[int] = field(default_factory=list)  # workshop numbers we do not offer
    people_count: int = 1  # how many people the mail named (for "the names of all persons")


def default_templates_dir() -> Path:
    """The templates shipped with the package, or the repository's own in an editable install."""
    packaged = Path(str(resources.files("mailbot"))) / "_defaults" / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


def load_environment(templates_dir: Path) -> SnapshotEnvironment:
    """A sandboxed snapshot of `templates_dir` over the shipped defaults (reply/templating.py)."""
    from mailbot.reply import templating

    return templating.load_environment(
        templates_dir, default_templates_dir(), templating.template_cache()
    )


_SNAPSHOTS: dict[Path, SnapshotEnvironment] = {}


def environment(config: Config) -> SnapshotEnvironment:
    """The sandboxed environment for `config`'s templates (the digest renders with it too)."""
    folder = _templates_dir(config)
    if folder not in _SNAPSHOTS:
        _SNAPSHOTS[folder] = load_environment(folder)
    return _SNAPSHOTS[folder]


_RESOLVED: dict[tuple[Path, str | None], Path] = {}


def _templates_dir(config: Config) -> Path:
    """`config.templates_dir`, remembered: resolving the path cost a syscall or more for each of
    the three templates of every reply (bench/rush.py)."""
    if config.source_path is None:  # relative to the cwd, which may change
        return config.templates_dir
    key = (config.source_path, config.mailbot.templates)
    if key not in _RESOLVED:
        _RESOLVED[key] = config.templates_dir
    return _RESOLVED[key]


@contextmanager
def trial_templates(config: Config) -> Iterator[None]:
    """Read the templates afresh for the block; keep them if it succeeds, else the old ones."""
    folder = config.templates_dir
    previous = _SNAPSHOTS.get(folder)
    _SNAPSHOTS[folder] = load_environment(folder)
    try:
        yield
    except BaseException:
        if previous is None:
            _SNAPSHOTS.pop(folder, None)
        else:
            _SNAPSHOTS[folder] = previous
        raise


def render_template(config: Config, name: str, context: dict[str, Any]) -> str:
    """Render one template; any jinja error becomes a `TemplateProblem` naming file and line."""
    from jinja2 import TemplateError  # after the first call only a lookup in sys.modules

    try:
        return environment(config).template(name).render(context)
    except TemplateError as exc:
        raise TemplateProblem(_where(exc, name)) from exc


def reply_context(
    request: ReplyRequest, config: Config, calendar_files: list[str] | None = None
) -> dict[str, Any]:
    """The one context of a reply: both bodies (and the preview) are rendered from it."""
    language = language_of(request.language, config)
    context = base_context(config, language)
    events = {e["id"]: e for e in context["events"]}
    recipients = {address for _, address in request.recipients}
    generic = "Sie" if language == "de" else "you"
    items: list[dict[str, Any]] = []
    for item in request.items:
        name = one_line(item.name)
        # Only a recipient's own address may appear in the text, never a third person's.
        who = name or (item.email if item.email in recipients else generic)
        entry = {
            "name": name,
            "who": who,
            "outcome": item.outcome.value,
            "position": item.position,
            "late": item.late,
            "event": events[_known(config, item.event_id)],
            "seated": item.outcome.value in SEATED and item.position is None,
        }
        entry["text"] = render_template(
            config, f"{language}/outcomes/{item.outcome.value}.txt.j2", {**context, "item": entry}
        ).strip()
        items.append(entry)
    attending = [i for i in items if i["seated"]]
    attending_events = list({i["event"]["id"]: i["event"] for i in attending}.values())
    context.update(
        kind=request.kind.value,
        greeting_name=one_line(request.greeting_name),
        items=items,
        attending=attending,
        attending_events=attending_events,
        missing=list(request.missing),
        unknown_events=list(request.unknown_events),
        people_count=request.people_count,
        subject=one_line(request.original_subject),
        calendar_files=list(calendar_files or []),
        cancelled=any(i["outcome"] == "cancelled" for i in items),
    )
    return context


def render_bodies(
    request: ReplyRequest, config: Config, calendar_files: list[str] | None = None
) -> tuple[str, str]:
    """The text and the HTML body of one reply, from the same context."""
    context = reply_context(request, config, calendar_files)
    language = context["language"]
    text = render_template(config, f"{language}/reply.txt.j2", context)
    html = render_template(config, f"{language}/reply.html.j2", context)
    return text, html


def _known(config: Config, event_id: str) -> str:
    if config.event_by_id(event_id) is None:
        raise TemplateProblem(f"reply names an unknown event {event_id!r}")
    return event_id


def _where(exc: TemplateError, fallback: str) -> str:
    """Name the template file and line: jinja2 rewrites tracebacks to point into templates."""
    location = fallback
    lineno = getattr(exc, "lineno", None)
    filename = getattr(exc, "filename", None) or getattr(exc, "name", None)
    if filename and lineno:
        location = f"{_relative(filename)}:{lineno}"
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
