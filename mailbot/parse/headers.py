"""Header values as clean text, and the addresses in address headers.

Headers arrive RFC 2047-encoded, as raw 8-bit bytes in an unknown charset, folded over lines,
or crafted ("victim@evil.example <kai@example.org>"). Every rule downstream wants one line of
readable text or a list of (name, address) pairs it can trust, so this is done here once per
header and remembered on the message.
"""

from __future__ import annotations

import re
from email.header import Header, decode_header, make_header
from email.message import Message
from functools import lru_cache

from mailbot.parse.charsets import decode_bytes

_SURROGATES = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLDING = re.compile(r"\r?\n[ \t]*")  # a header's line break and the indent after it
_COMMENT = re.compile(r"\([^()]*\)")


def _unsurrogate(value: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogates; turn them back into text."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    return decode_bytes(raw)[0]


def _header_str(value: object) -> str:
    """Header value as str with raw 8-bit bytes decoded; RFC 2047 words left untouched.

    compat32 hands back an `email.header.Header` (charset unknown-8bit) for headers with
    raw 8-bit bytes; `str()` of that would turn every such byte into U+FFFD.
    """
    if isinstance(value, Header):
        out = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, bytes):
                cs = str(charset or "").lower()
                chunk = decode_bytes(chunk, None if cs in ("", "unknown-8bit") else cs)[0]
            out.append(chunk)
        return "".join(out)
    return _unsurrogate(str(value))


def decode_header_value(value: object) -> str:
    """Decode an RFC 2047 header value to one clean line of text. Never raises."""
    if value is None:
        return ""
    if isinstance(value, str) and len(value) < 2000:
        return _decode_str(value)
    return _decode(value)


@lru_cache(maxsize=2048)
def _decode_str(value: str) -> str:
    return _decode(value)


def _decode(value: object) -> str:
    try:
        text = _header_str(value)
    except Exception:
        return ""
    if "\n" in text:  # folded over lines
        text = _FOLDING.sub(" ", text)
    if "=?" not in text:  # no RFC 2047 encoded word: nothing to decode
        return _CONTROL.sub("", text).strip()
    try:
        parts = decode_header(text)
        try:
            text = str(make_header(parts))
        except Exception:
            pieces = []
            for chunk, cs in parts:
                pieces.append(decode_bytes(chunk, cs)[0] if isinstance(chunk, bytes) else chunk)
            text = " ".join(pieces)
    except Exception:
        pass
    return _CONTROL.sub("", text).strip()


def header(msg: Message, name: str) -> str:
    """The first `name` header of `msg`, decoded ("" when absent or unreadable)."""
    if not has_header(msg, name):
        return ""
    cache = _memo(msg)
    key = ("header", name.lower())
    if key not in cache:
        try:
            cache[key] = decode_header_value(msg.get(name))
        except Exception:
            cache[key] = ""
    return cache[key]  # type: ignore[return-value]


def return_path(msg: Message) -> str | None:
    """The decoded Return-Path, or None when the mail has none ("<>" is a bounce's)."""
    return header(msg, "Return-Path") if has_header(msg, "Return-Path") else None


def has_header(msg: Message, name: str) -> bool:
    """Whether `msg` has a `name` header. Most headers the rules ask about are absent, and
    `Message.get` finds that out by lower-casing every header name, for every question."""
    cache = _memo(msg)
    names = cache.get(("names", ""))
    if names is None:
        names = cache[("names", "")] = frozenset(key.lower() for key in msg)
    return name.lower() in names  # type: ignore[operator]


def _memo(obj: Message) -> dict[tuple[str, str], object]:
    """A per-message cache: several rules ask for the same header or part list, and
    `getaddresses` and `get_content_type` are among the most expensive calls of a parse."""
    cache = obj.__dict__.get("_mailbot_memo")
    if cache is None:
        cache = obj.__dict__["_mailbot_memo"] = {}
    return cache


def addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header.

    The header is split before decoding so that an encoded comma inside a display name
    ("Weißenfels, Jörg") cannot split one person into two.
    """
    cache = _memo(msg)
    key = ("addresses", name.lower())
    if key not in cache:
        cache[key] = _addresses(msg, name)
    return list(cache[key])  # type: ignore[call-overload]


_ANGLE_ADDR = re.compile(r"<\s*([^<>\s]+@[^<>\s]+?)\s*>")
_ANGLE_OR_COMMA = re.compile(r"[<>,]")
_ADDR_SPEC = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def _split_address_list(value: str) -> list[str]:
    """Split at commas that are outside quotes, comments and angle brackets."""
    if '"' in value or "(" in value:
        return _split_quoted_address_list(value)
    # Without quotes and comments only the angle brackets matter: visit just those and the
    # commas, not every character (most address headers; the same parts, see
    # tests/test_parse_general.py).
    parts, start, angle = [], 0, False
    for found in _ANGLE_OR_COMMA.finditer(value):
        char = found.group()
        if char == "<":
            angle = True
        elif char == ">":
            angle = False
        elif not angle:
            parts.append(value[start : found.start()])
            start = found.end()
    parts.append(value[start:])
    return [p for p in parts if p.strip()]


def _split_quoted_address_list(value: str) -> list[str]:
    """The general case, character by character: commas inside quotes, comments or angle
    brackets do not split."""
    parts, current, depth, quoted, angle = [], [], 0, False, False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")" and depth:
            depth -= 1
        elif not quoted and not depth and char == "<":
            angle = True
        elif not quoted and not depth and char == ">":
            angle = False
        elif char == "," and not (quoted or depth or angle):
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """Addresses are taken from the raw header, before any RFC 2047 decoding.

    The mailbox is the last <angle-addr> of each element when there is one: a display name
    like "victim@evil.example <kai@example.org>" or an encoded word hiding "\\r\\nBcc: …"
    must never become the address mailbot answers.
    """
    if not has_header(msg, name):
        return []
    try:
        values = [_header_str(v) for v in msg.get_all(name, [])]
    except Exception:
        return []
    out = []
    for value in values:
        unfolded = _FOLDING.sub(" ", value) if "\n" in value else value
        for element in _split_address_list(unfolded):
            angles = list(_ANGLE_ADDR.finditer(element))
            if angles:
                addr, display = angles[-1].group(1), element[: angles[-1].start()]
            else:
                addr, display = _COMMENT.sub(" ", element).strip(), ""
            addr = addr.strip().lower()
            if not _ADDR_SPEC.match(addr):
                continue
            out.append((decode_header_value(display).strip("'\" "), addr))
    return out
