"""Sample data for every kind of reply: `mailbot check` renders them all, admins preview them.

Rendering each outcome for each event and language with plausible values is what catches a
typo in an admin's template before a participant would see it.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailbot.config import Config
from mailbot.decide.rules import Outcome, ReplyKind
from mailbot.reply.render import LANGUAGES, ReplyItem, ReplyRequest, render_text

SAMPLE_PERSON = ("Erika Mustermann", "erika.mustermann@example.org")


def sample_requests(config: Config) -> Iterator[tuple[str, ReplyRequest]]:
    name, email = SAMPLE_PERSON
    for language in LANGUAGES:
        base = {
            "language": language,
            "recipients": [(name, email)],
            "greeting_name": name,
            "original_subject": "Anmeldung",
            "in_reply_to": "<sample@example.org>",
        }
        for event in config.events:
            for outcome in Outcome:
                label = f"{language}/{event.id}/{outcome.value}"
                item = ReplyItem(
                    name, email, event.id, outcome, 2 if outcome is Outcome.WAITLISTED else None
                )
                yield label, ReplyRequest(kind=ReplyKind.OUTCOMES, items=[item], **base)
        for kind in (ReplyKind.MISSING_DATA, ReplyKind.QUESTION_RECEIVED, ReplyKind.RECEIVED):
            yield (
                f"{language}/{kind.value}",
                ReplyRequest(kind=kind, missing=["name", "event"], **base),
            )


def check_templates(config: Config) -> list[str]:
    """Render every sample; return one line per problem (empty when all render)."""
    problems: list[str] = []
    for label, request in sample_requests(config):
        try:
            text = render_text(request, config)
        except Exception as exc:  # report every template problem, not just the first
            problems.append(f"{label}: {exc}")
            continue
        if not text.strip():
            problems.append(f"{label}: renders to an empty mail")
    return problems
