"""Write a reply straight to the bytes that go on the wire.

Why not `EmailMessage` + `as_bytes()`: every reply has the same shape, and the stdlib builds it
through its general header parser and generator, which cost about 9 ms of CPU per reply —
more than parsing the incoming mail and deciding on it together (bench/rush.py, issue 7).
Here the shape is fixed, so the bytes are written directly (about 0.3 ms):

    multipart/mixed                      (only when there is a calendar entry)
      multipart/alternative
        text/plain; charset=utf-8        quoted-printable
        text/html; charset=utf-8         quoted-printable
      text/calendar; method=...          base64, as an attachment

What keeps it safe is the same as before: header values from mails arrive through
`one_line` (no CR/LF), non-ASCII words are RFC 2047 encoded (the subject by the stdlib's
`Header`, names by `encoded_words`), every line is folded below 78 characters where it has a
place to fold, every body is 7-bit clean, and the boundaries start with "=_", which
quoted-printable and base64 can never produce.
tests/test_reply_wire.py holds the result against a reference built with `EmailMessage`,
part by part and header by header, and checks that the stdlib reads it without a defect.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from functools import lru_cache

CRLF = "\r\n"
MAX_LINE = 78
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
# A plain addr-spec: no space, quote, angle bracket, control character or line break, so it
# can stand in a header or after MAIL FROM/RCPT TO as it is.
_ADDR_SPEC = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class Attachment:
    """A text attachment (the .ics): its MIME subtype, parameters, file name and text."""

    subtype: str
    params: tuple[tuple[str, str], ...]
    filename: str
    text: str


def safe_address(address: str) -> bool:
    """Whether `address` is a plain addr-spec; anything else (a stray quote, a space, a second
    "@", a trailing newline) is not written or sent to."""
    return _ADDR_SPEC.fullmatch(address) is not None


@lru_cache(maxsize=512)
def unstructured(name: str, value: str) -> str:
    """Subject and the like: as is when ASCII and short, else folded RFC 2047 encoded words.

    Cached: most replies in a rush share a handful of subjects, and encoding one costs more
    than writing the rest of the headers."""
    if value.isascii() and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}"
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, maxlinelen=MAX_LINE, header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def mailbox(name: str | None, address: str) -> list[str]:
    """ "Name" <address> as the words a header may be folded between: the name quoted or
    RFC 2047 encoded as RFC 5322 asks, then the angle address."""
    if not name:
        return [address]
    if not name.isascii():
        return [*encoded_words(name), f"<{address}>"]
    if _SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return [f'"{escaped}"', f"<{address}>"]
    return [*name.split(), f"<{address}>"]


# UTF-8 bytes per encoded word: "=?utf-8?b?" + 60 characters of base64 + "?=" is 72, so
# even the first word after "To: " fits a line of 78.
_WORD_BYTES = 45


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded words (base64, which is safe anywhere in a phrase), split
    between characters, never inside one.

    Written here rather than with `Header`: most names in a rush are not ASCII, and `Header`
    encodes each one both ways to pick the shorter, about 30 µs a name.
    """
    words = []
    chunk = b""
    for char in text:
        data = char.encode()
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return [f"=?utf-8?b?{binascii.b2a_base64(w, newline=False).decode()}?=" for w in words if w]


def address_list(name: str, mailboxes: Sequence[Sequence[str]]) -> str:
    """A header of mailboxes, comma-separated, folded between words."""
    words: list[str] = []
    for index, box in enumerate(mailboxes):
        words += [*box[:-1], box[-1] + ("," if index < len(mailboxes) - 1 else "")]
    return folded(name, words)


def folded(name: str, words: Sequence[str]) -> str:
    """ "Name: word word ...", with a line break before a word that would pass 78 characters."""
    out = f"{name}:"
    width = len(out)
    for index, word in enumerate(words):
        if index and width + 1 + len(word) > MAX_LINE:
            out += CRLF
            width = 0
        out += f" {word}"
        width += 1 + len(word)
    return out


def quoted_printable(text: str) -> bytes:
    """UTF-8, quoted-printable, CRLF line ends; lines of at most 76 characters.

    Line by line, each line's encoding kept: quoted-printable encodes every line on its own,
    so a line with its line break encodes as it does within the whole text, and the joined
    lines are the bytes `b2a_qp` makes of the whole (tests/test_reply_wire.py). Most lines of
    a reply are the template's own and repeat in every reply; encoding them again cost about a
    sixth of composing a reply (bench/rush.py).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    last = lines.pop()  # after the last line break: encoded as the end of the text
    encoded = [
        _qp_line(line) if len(line) <= _CACHED_LINE else _qp_new_line(line) for line in lines
    ]
    return b"".join([*encoded, _qp(last.encode("utf-8"))])


# Room for the template lines of both languages (about 300) and those of the last replies;
# lines with a name or a date in them come once and make way. A line longer than a template's
# (a participant's remark pasted in one piece) is not kept, so the cache stays a few MB at most.
_CACHED_LINE = 500


@lru_cache(maxsize=1024)
def _qp_line(line: str) -> bytes:
    """`_qp_new_line`, kept for the lines that come again."""
    return _qp_new_line(line)


def _qp_new_line(line: str) -> bytes:
    """One line and its line break, quoted-printable, CRLF-ended."""
    return _qp(f"{line}\n".encode())


def _qp(data: bytes) -> bytes:
    """Quoted-printable of UTF-8 text whose line breaks are LF, with CRLF line breaks."""
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ended by CRLF (as `base64.encodebytes` writes
    them, without its loop over 57-byte pieces in Python)."""
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return b"".join(line + b"\r\n" for line in lines)


def boundary() -> str:
    return f"=_{secrets.token_hex(12)}"


def _param(value: str) -> str:
    return f'"{value}"' if _SPECIALS.search(value) or " " in value else value


def _text_part(subtype: str, text: str) -> bytes:
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
    )
    return head.encode("ascii") + quoted_printable(text)


def _attachment_part(attachment: Attachment) -> bytes:
    params = "".join(f"; {key}={_param(value)}" for key, value in attachment.params)
    head = (
        f"Content-Type: text/{attachment.subtype}{params}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}"
        f'Content-Disposition: attachment; filename="{attachment.filename}"{CRLF}{CRLF}'
    )
    return head.encode("ascii") + base64_lines(attachment.text.encode("utf-8"))


def _multipart(subtype: str, parts: Sequence[bytes]) -> tuple[str, bytes]:
    """The Content-Type line and the body of a multipart of `parts`."""
    mark = boundary()
    delimiter = f"{CRLF}--{mark}{CRLF}".encode("ascii")
    body = b"".join(
        [
            f"--{mark}{CRLF}".encode("ascii"),
            delimiter.join(parts),
            f"{CRLF}--{mark}--{CRLF}".encode(),
        ]
    )
    return f'Content-Type: multipart/{subtype};{CRLF} boundary="{mark}"', body


def write_reply(
    header_lines: Sequence[str], text: str, html: str, attachments: Sequence[Attachment]
) -> bytes:
    """The whole message: the given (already folded) header lines, then the MIME structure."""
    content_type, body = _multipart(
        "alternative", [_text_part("plain", text), _text_part("html", html)]
    )
    if attachments:
        inner = f"{content_type}{CRLF}{CRLF}".encode("ascii") + body
        content_type, body = _multipart(
            "mixed", [inner, *(_attachment_part(a) for a in attachments)]
        )
    head = CRLF.join([*header_lines, "MIME-Version: 1.0", content_type])
    return head.encode("ascii") + (CRLF + CRLF).encode("ascii") + body
