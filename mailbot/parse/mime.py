"""Bytes to readable text: decoded headers and one plain-text body.

Real inbox mail is messy: wrong or missing charsets, RFC 2047 words in odd places, raw 8-bit
headers, HTML-only bodies, attachments, bounces that nest the original message, and the
occasional hostile message built to make parsers spin. Everything downstream only wants
"what did the human write", so this module turns any byte string into headers and a body
text while staying within fixed bounds and never raising on bad input.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from mailbot.parse.charsets import decode_bytes
from mailbot.parse.headers import _memo, _unsurrogate
from mailbot.parse.headers import addresses as addresses  # re-exported: parse.mime is the API
from mailbot.parse.headers import decode_header_value as decode_header_value
from mailbot.parse.headers import has_header as has_header
from mailbot.parse.headers import header as header
from mailbot.parse.headers import return_path as return_path
from mailbot.parse.htmltext import html_to_text

MAX_RAW_BYTES = 10_000_000
MAX_PARTS = 200
MAX_DEPTH = 20
MAX_TEXT_CHARS = 200_000
MAX_HTML_CHARS = 1_000_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Body:
    """The readable text of a mail and what went wrong while getting it."""

    text: str = ""
    from_html: bool = False
    problems: list[str] = field(default_factory=list)


def parse_bytes(raw: bytes) -> Message:
    """Parse with the lenient compat32 policy; huge input is cut (the body comes first)."""
    if len(raw) > MAX_RAW_BYTES:
        raw = raw[:MAX_RAW_BYTES]
    return email.message_from_bytes(raw)


def content_type(part: Message) -> str:
    cache = _memo(part)
    if ("ctype", "") not in cache:
        try:
            cache[("ctype", "")] = part.get_content_type().lower()
        except Exception:
            cache[("ctype", "")] = "text/plain"
    return str(cache[("ctype", "")])


def is_attachment(part: Message) -> bool:
    try:
        disposition = str(part.get("Content-Disposition", "")).lower()
        ctype = str(part.get("Content-Type", "")).lower()
        if not disposition and "name" not in ctype and "*" not in ctype:
            # No file name anywhere, what get_filename would find out slowly. (RFC 2231
            # parameters, "*", can make it raise under compat32: that stays an attachment.)
            return False
        return disposition.startswith("attachment") or (
            bool(part.get_filename()) and not disposition.startswith("inline")
        )
    except Exception:
        return True


def iter_parts(msg: Message) -> Iterator[tuple[Message, int]]:
    """Leaf parts with their depth, bounded in count and depth; attached mails not entered."""
    cache = _memo(msg)
    if ("parts", "") not in cache:
        cache[("parts", "")] = list(_walk(msg))
    yield from cache[("parts", "")]  # type: ignore[misc]


def _walk(msg: Message) -> Iterator[tuple[Message, int]]:
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and count < MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        payload = None
        try:
            if part.is_multipart() and content_type(part).startswith("multipart/"):
                payload = part.get_payload()
        except Exception:
            payload = None
        if isinstance(payload, list):
            if depth < MAX_DEPTH:
                stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
            elif payload:
                _memo(msg)[("too_deep", "")] = True
            continue
        yield part, depth


def too_deep(msg: Message) -> bool:
    """True when the MIME tree goes deeper than MAX_DEPTH: the rest was not read."""
    list(iter_parts(msg))
    return bool(_memo(msg).get(("too_deep", "")))


def _part_text(part: Message) -> tuple[str, bool]:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            return _unsurrogate(payload), True
        return "", False
    if not isinstance(data, bytes):
        return str(data), True
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(data[: MAX_TEXT_CHARS * 4], charset)


def _param(part: Message, name: str) -> str:
    try:
        return str(part.get_param(name, "") or "").strip().lower()
    except Exception:
        return ""


def unflow(text: str, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed soft line breaks (a line ending in a space continues)."""
    out: list[str] = []
    buf = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.endswith(" ") and line.strip() != "--" and not line.startswith(">"):
            buf += line[:-1] if delsp else line
        else:
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)


def body_text(msg: Message) -> Body:
    """The readable body: inline text/plain parts, else HTML rendered as text."""
    cache = _memo(msg)
    if ("body", "") not in cache:
        cache[("body", "")] = _body_text(msg)
    found: Body = cache[("body", "")]  # type: ignore[assignment]
    return Body(found.text, found.from_html, list(found.problems))


def _body_text(msg: Message) -> Body:
    body = Body()
    plains: list[str] = []
    htmls: list[str] = []
    clean = True
    for part, _depth in iter_parts(msg):
        ctype = content_type(part)
        if ctype not in ("text/plain", "text/html") or is_attachment(part):
            continue
        text, ok = _part_text(part)
        clean = clean and ok
        if ctype == "text/plain" and _param(part, "format") == "flowed":
            text = unflow(text, delsp=_param(part, "delsp") == "yes")
        (plains if ctype == "text/plain" else htmls).append(text)
    if plains and any(p.strip() for p in plains):
        text = "\n\n".join(plains)
    elif htmls:
        text = "\n\n".join(html_to_text(h[:MAX_HTML_CHARS]) for h in htmls)
        body.from_html = True
    else:
        text = "\n\n".join(plains)
    if not clean:
        body.problems.append("could not decode body")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = _CONTROL.sub("", text)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        body.problems.append("body truncated")
    body.text = text
    return body
