"""Turn a decision into reply requests: who gets which mail. Pure, like the rules.

One mail in, at most one reply out (listing every person's outcome), plus one mail for each
person promoted from a waiting list.
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from mailbot.config import Config, EventSettings
from mailbot.decide.rules import Decision, Outcome, ReplyKind
from mailbot.models import ParsedMail
from mailbot.reply.render import ReplyItem, ReplyRequest

_NO_REPLY_LOCALPARTS = (
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "mailer-daemon",
    "postmaster",
)


def reply_for(decision: Decision, parsed: ParsedMail, config: Config) -> ReplyRequest | None:
    """The reply to the sender (and to the people the mail registered), or None for silence."""
    if decision.reply is None:
        return None
    recipients = _recipients(decision, parsed, config)
    if not recipients:
        return None
    return ReplyRequest(
        kind=decision.reply,
        language=parsed.language,
        recipients=recipients,
        original_subject=parsed.headers.subject,
        in_reply_to=parsed.headers.message_id,
        references=parsed.headers.references,
        greeting_name=_greeting_name(parsed),
        items=[
            ReplyItem(
                o.participant.name, o.participant.email, o.event_id, o.outcome, o.position, o.late
            )
            for o in decision.outcomes
        ],
        missing=list(decision.missing),
        unknown_events=[n for n in parsed.events if config.event_by_number(n) is None],
        people_count=max(1, len(parsed.participants)),
    )


def promotion_request(
    name: str | None, email: str, event: EventSettings, language: str
) -> ReplyRequest:
    subject = (
        f"Sie sind nachgerückt: {event.title}"
        if language == "de"
        else f"A seat for you: {event.title}"
    )
    return ReplyRequest(
        kind=ReplyKind.OUTCOMES,
        language=language,
        recipients=[(name, email)],
        subject=subject,
        greeting_name=name,
        items=[ReplyItem(name, email, event.id, Outcome.PROMOTED)],
    )


def _recipients(
    decision: Decision, parsed: ParsedMail, config: Config
) -> list[tuple[str | None, str]]:
    found: dict[str, str | None] = {}
    sender = (parsed.headers.from_address or "").lower()
    if sender:
        found[sender] = parsed.headers.from_name
    for outcome in decision.outcomes:
        found.setdefault(outcome.participant.email, outcome.participant.name)
    return [(name, address) for address, name in found.items() if _answerable(address, config)]


# A dot-atom address: what parseaddr would hand back unchanged, found without its tokenizer
# (a third of composing's address work).
_DOT_ATOM = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def _answerable(address: str, config: Config) -> bool:
    addr = address if _DOT_ATOM.fullmatch(address) else parseaddr(address)[1]
    if "@" not in addr or addr != address or addr in config.own_addresses:
        return False
    local = addr.split("@", 1)[0]
    return not (
        local in _NO_REPLY_LOCALPARTS or local.endswith("-request") or local.startswith("owner-")
    )


def _greeting_name(parsed: ParsedMail) -> str | None:
    """A parsed name, never the raw display name ("Oberdieck, Henning" greets badly)."""
    sender = (parsed.headers.from_address or "").lower()
    for person in parsed.participants:
        if person.email == sender and person.name:
            return person.name
    if len(parsed.participants) == 1 and parsed.participants[0].name:
        return parsed.participants[0].name
    return None
