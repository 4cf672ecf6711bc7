"""Assemble a rendered reply into the `EmailMessage` that is stored in the outbox and sent.

The structure is what every client reads well: multipart/alternative (text, then HTML) and,
when there is a calendar entry, that inside multipart/mixed with the .ics as an attachment.
Every body is 7-bit clean (quoted-printable, base64), so no relay has to re-encode it. Header
values that come from mails pass through `one_line` and the stdlib's header objects, so a
CR/LF in a name or a subject can never start a header of its own.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailbot.config import Config
from mailbot.reply.context import language_of, one_line
from mailbot.reply.ics import calendar_files
from mailbot.reply.mailpolicy import new_message
from mailbot.reply.render import ReplyRequest, render_bodies

_MSGID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
# A plain addr-spec: anything else (a stray quote, a space, a second "@") is not sent to.
_ADDR_SPEC = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_REPLY_PREFIX = re.compile(r"^(re|aw|antw|sv|vs)\s*:", re.IGNORECASE)


def safe_address(address: str) -> bool:
    return bool(_ADDR_SPEC.match(address))


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


def build_message(request: ReplyRequest, config: Config, now: datetime) -> EmailMessage:
    """The finished reply, with threading and the RFC 3834 headers that stop auto-reply loops."""
    language = language_of(request.language, config)
    calendars = calendar_files(request, config, now)
    text, html = render_bodies(request, config, [c.filename for c in calendars])
    message = new_message()
    organiser_headers(message, config, now)
    recipients = [(n, a) for n, a in request.recipients if safe_address(a)]
    if not recipients:
        raise ValueError("a reply needs at least one valid recipient address")
    message["To"] = [Address(one_line(n), addr_spec=a) for n, a in recipients]
    if config.organiser.reply_to:
        message["Reply-To"] = config.organiser.reply_to
    message["Subject"] = one_line(request.subject, 180) or reply_subject(
        request.original_subject, language
    )
    parent = message_ids(request.in_reply_to)[:1]
    if parent:
        message["In-Reply-To"] = parent[0]
        refs = [m for r in request.references for m in message_ids(r)][-10:]
        message["References"] = " ".join([*[r for r in refs if r != parent[0]], parent[0]])
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Loop"] = config.organiser.address
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for calendar in calendars:
        message.add_attachment(
            calendar.text.encode("utf-8"),
            maintype="text",
            subtype="calendar",
            filename=calendar.filename,
            params={"method": calendar.method, "charset": "utf-8"},
        )
    # Only now: making the body multipart moves every Content-* header into the first part.
    message["Content-Language"] = language
    return message
