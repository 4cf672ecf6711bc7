"""Forward a participant's question to the organisers, so that a human answers it.

The participant gets "question received"; the organisers get this mail with the question
quoted and Reply-To set to the participant, so answering is one click in their own client.
It goes to `organiser.digest_to` (the team's addresses) and only falls back to the organiser
address when no team address is configured.

It carries no `Auto-Submitted` header on purpose: when it lands in the inbox mailbot reads
(the fallback), the rules leave mail from our own address untouched and unread for a human,
whereas an Auto-Submitted header would make the parser file it away as machine mail.
`X-Auto-Response-Suppress: All` still keeps Exchange's out-of-office replies away.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage

from mailbot.config import Config
from mailbot.models import ParsedMail
from mailbot.reply.context import base_context, one_line
from mailbot.reply.message import message_ids, organiser_headers
from mailbot.reply.render import render_template
from mailbot.reply.wire import safe_address

MAX_QUESTION_CHARS = 8000


def question_text(raw: bytes) -> str:
    """The participant's own words: without the quoted thread below, cut to a sane length."""
    # Not the poll's import (mailbot/helpers.py); a question to forward is rare.
    from mailbot.parse.mime import body_text, parse_bytes
    from mailbot.parse.quotes import split_quoted

    text = split_quoted(body_text(parse_bytes(raw)).text).own
    return text[:MAX_QUESTION_CHARS].strip()


def quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines()) or ">"


def question_forward(
    parsed: ParsedMail, raw: bytes, config: Config, now: datetime
) -> EmailMessage | None:
    """The mail to the organisers, or None when the sender has no address we could answer."""
    sender = (parsed.headers.from_address or "").lower()
    if not safe_address(sender):
        return None
    language = config.mailbot.default_language  # the organisers' language, not the sender's
    name = one_line(parsed.headers.from_name)
    subject = one_line(parsed.headers.subject, 150)
    context = {
        **base_context(config, language),
        "name": name,
        "address": sender,
        "subject": subject,
        "participant_language": parsed.language,
        "question": quote(question_text(raw)),
    }
    text = render_template(config, f"{language}/forward.txt.j2", context)
    message = EmailMessage()
    organiser_headers(message, config, now)
    message["To"] = [Address(addr_spec=a) for a in config.organiser.digest_to] or [
        Address(addr_spec=config.organiser.address)
    ]
    message["Reply-To"] = Address(name, addr_spec=sender)
    who = name or sender
    label = "Frage von" if language == "de" else "Question from"
    message["Subject"] = f"{label} {who}: {subject}" if subject else f"{label} {who}"
    parent = message_ids(parsed.headers.message_id)[:1]
    if parent:
        message["In-Reply-To"] = parent[0]
        message["References"] = parent[0]
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Loop"] = config.organiser.address
    message["Content-Language"] = language
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return message
