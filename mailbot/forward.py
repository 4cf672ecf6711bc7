"""Recover the original mail from an organiser's forward, so mailbot answers the participant.

Registrations often reach an organiser's own address and are forwarded to the registration
inbox, either attached (message/rfc822) or inline below a "Weitergeleitete Nachricht" or
"Forwarded message" line with the original From/Date/Subject. The original sender is the
participant; the original date is the arrival that counts for the deadline.
"""

from __future__ import annotations

import base64
import email
import quopri
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Original Message|"
    r"Ursprüngliche Nachricht|Originalnachricht)\s*-{2,}|Begin forwarded message:|"
    r"Anfang der weitergeleiteten (?:Nachricht|E-Mail):)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER = re.compile(
    r"^\s*\*?(From|Von|Date|Datum|Gesendet|Sent|Subject|Betreff|To|An|Cc)\*?\s*:\s*(.*)$",
    re.IGNORECASE,
)
_KEYS = {
    "from": "From", "von": "From", "date": "Date", "datum": "Date", "gesendet": "Date",
    "sent": "Date", "subject": "Subject", "betreff": "Subject", "to": "To", "an": "To", "cc": "Cc",
}  # fmt: skip
_MONTHS = {
    "januar": 1, "jänner": 1, "februar": 2, "märz": 3, "april": 4, "mai": 5, "juni": 6,
    "juli": 7, "august": 8, "september": 9, "oktober": 10, "november": 11, "dezember": 12,
    "january": 1, "february": 2, "march": 3, "may": 5, "june": 6, "july": 7, "october": 10,
    "december": 12,
}  # fmt: skip
_GERMAN_DATE = re.compile(
    r"(\d{1,2})\.\s*([A-Za-zäÄ]+)\s+(\d{4})(?:\D+(\d{1,2}):(\d{2}))?|"
    r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\D+(\d{1,2}):(\d{2}))?|"
    r"([A-Za-z]+)\s+(\d{1,2}),?\s+(\d{4})(?:\D+(\d{1,2}):(\d{2}))?"
)


@dataclass(frozen=True)
class Forwarded:
    raw: bytes
    arrival: datetime | None


def unwrap_forward(raw: bytes, tz: ZoneInfo) -> Forwarded | None:
    """The forwarded original (bytes and its date), or None when the mail forwards nothing."""
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        return _attached(message, tz) or _inline(message, tz)
    except Exception:  # a broken forward is handled as an ordinary mail by the caller
        return None


def _attached(message: Message, tz: ZoneInfo) -> Forwarded | None:
    for part in message.walk():
        if part.get_content_type() != "message/rfc822":
            continue
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding in ("base64", "quoted-printable"):
            # Some clients encode the attached mail (RFC 2046 forbids it; it happens): the
            # parser then sees a header-less "message" whose body is the encoded text.
            text = inner.get_payload() if isinstance(inner, Message) else payload
            if not isinstance(text, str):
                continue
            data = (
                base64.b64decode(text, validate=False)
                if encoding == "base64"
                else quopri.decodestring(text.encode("ascii", "replace"))
            )
            inner = email.message_from_bytes(data, policy=policy.default)
        elif isinstance(inner, Message):
            data = inner.as_bytes(policy=policy.SMTP)
        else:
            continue
        return Forwarded(data, _parse_date(str(inner.get("Date", "")), tz))
    return None


def _inline(message: Message, tz: ZoneInfo) -> Forwarded | None:
    body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
    if body is None:
        return None
    text = body.get_content()
    match = _MARKER.search(text)
    if match is None:
        return None
    lines = text[match.end() :].lstrip("\n").splitlines()
    headers: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - the index after the loop is used
        found = _HEADER.match(line.lstrip("> "))
        if found:
            headers.setdefault(_KEYS[found.group(1).lower()], found.group(2).strip())
        elif line.strip() or headers:
            break
    if "From" not in headers:
        return None
    rest = "\n".join(line[2:] if line.startswith("> ") else line for line in lines[index:])
    inner = EmailMessage()
    for name in ("From", "To", "Cc", "Subject"):
        if headers.get(name):
            inner[name] = _mailto_cleanup(headers[name])
    arrival = _parse_date(headers.get("Date", ""), tz)
    if arrival is not None:
        inner["Date"] = email.utils.format_datetime(arrival)
    inner.set_content(rest.strip() + "\n")
    return Forwarded(inner.as_bytes(policy=policy.SMTP), arrival)


def _mailto_cleanup(value: str) -> str:
    # Outlook writes "Erika Mustermann [mailto:erika@example.org]"
    return re.sub(r"\[mailto:([^\]]+)\]", r"<\1>", value).replace("\r", " ").replace("\n", " ")


def _parse_date(value: str, tz: ZoneInfo) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    except (TypeError, ValueError, IndexError):
        pass
    found = _GERMAN_DATE.search(value)
    if not found:
        return None
    g = found.groups()
    try:
        if g[0]:
            month = _MONTHS.get(g[1].lower())
            day, year, hour, minute = int(g[0]), int(g[2]), g[3], g[4]
        elif g[5]:
            month = int(g[6])
            day, year, hour, minute = int(g[5]), int(g[7]), g[8], g[9]
        else:
            month = _MONTHS.get(g[10].lower())
            day, year, hour, minute = int(g[11]), int(g[12]), g[13], g[14]
        if not month:
            return None
        return datetime(year, month, day, int(hour or 0), int(minute or 0), tzinfo=tz)
    except ValueError:
        return None
