"""Assemble a rendered reply into the bytes that are stored in the outbox and sent.

The structure is what every client reads well: multipart/alternative (text, then HTML) and,
when there is a calendar entry, that inside multipart/mixed with the .ics as an attachment
(`wire` writes it). Every body is 7-bit clean (quoted-printable, base64), so no relay has to
re-encode it. Header values that come from mails pass through `one_line` (and recipient
addresses through `safe_address`), so a CR/LF in a name or a subject can never start a header
of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailbot.config import Config
from mailbot.reply import wire
from mailbot.reply.context import language_of, one_line
from mailbot.reply.render import ReplyRequest, render_bodies
from mailbot.reply.wire import safe_address

# ASCII only: a header of our reply is 7-bit, and a sender may put anything in theirs.
_MSGID = re.compile(r"<[!-;=?A-~]{1,200}@[!-;=?A-~]{1,200}>")
_REPLY_PREFIX = re.compile(r"^(re|aw|antw|sv|vs)\s*:", re.IGNORECASE)


def message_ids(value: str | None) -> list[str]:
    """Only well-formed <id@host> tokens survive: anything else in the field is dropped."""
    return _MSGID.findall(value or "")


def reply_subject(original: str, language: str) -> str:
    """ "Re: <original>", or a clear subject of our own when the participant wrote none."""
    subject = one_line(original, 180)
    if not subject:
        return "Ihre Anmeldung" if language == "de" else "Your registration"
    if _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}"


def organiser_headers(message: EmailMessage, config: Config, now: datetime) -> None:
    """From, Date and a Message-ID on the organiser's domain: what every mail we send carries."""
    organiser = config.organiser
    message["From"] = Address(one_line(organiser.name), addr_spec=organiser.address)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=organiser.domain)


@dataclass(frozen=True)
class OutgoingMail:
    """What the outbox stores: the bytes to send, the envelope recipients and the Message-ID."""

    raw: bytes
    recipients: list[str]
    message_id: str

    @classmethod
    def of(cls, message: EmailMessage) -> OutgoingMail:
        return cls(
            raw=message.as_bytes(policy=policy.SMTP),
            recipients=[a.addr_spec for a in message["To"].addresses],
            message_id=str(message["Message-ID"]),
        )


def compose_reply(request: ReplyRequest, config: Config, now: datetime) -> OutgoingMail:
    """The finished reply, with threading and the RFC 3834 headers that stop auto-reply loops."""
    from mailbot.reply.ics import calendar_files  # icalendar comes with the first reply

    language = language_of(request.language, config)
    calendars = calendar_files(request, config, now)
    text, html = render_bodies(request, config, [c.filename for c in calendars])
    recipients = [(one_line(n), a) for n, a in request.recipients if safe_address(a)]
    if not recipients:
        raise ValueError("a reply needs at least one valid recipient address")
    organiser = config.organiser
    message_id = make_msgid(domain=organiser.domain)
    lines = [
        wire.address_list("From", [wire.mailbox(one_line(organiser.name), organiser.address)]),
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id}",
        wire.address_list("To", [wire.mailbox(n, a) for n, a in recipients]),
    ]
    if organiser.reply_to:
        lines.append(f"Reply-To: {organiser.reply_to}")
    subject = one_line(request.subject, 180) or reply_subject(request.original_subject, language)
    lines.append(wire.unstructured("Subject", subject))
    parent = message_ids(request.in_reply_to)[:1]
    if parent:
        lines.append(f"In-Reply-To: {parent[0]}")
        refs = [m for r in request.references for m in message_ids(r)][-10:]
        lines.append(wire.folded("References", [*[r for r in refs if r != parent[0]], parent[0]]))
    lines += [
        "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All",
        f"X-Loop: {organiser.address}",
        f"Content-Language: {language}",
    ]
    attachments = [
        wire.Attachment(
            "calendar", (("method", c.method), ("charset", "utf-8")), c.filename, c.text
        )
        for c in calendars
    ]
    raw = wire.write_reply(lines, text, html, attachments)
    return OutgoingMail(raw, [a for _, a in recipients], message_id)


def build_message(request: ReplyRequest, config: Config, now: datetime) -> EmailMessage:
    """The reply as an `EmailMessage`, read back from the very bytes `compose_reply` writes
    (for previews, samples and tests: what they look at is what participants get)."""
    message = message_from_bytes(compose_reply(request, config, now).raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message
