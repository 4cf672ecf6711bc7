"""The directly written reply (reply/wire.py) says exactly what the stdlib would have said.

`compose_reply` writes the bytes itself for speed (issue 7). The oracle here is the way replies
were built before: the same rendered texts and calendar entries put into an `EmailMessage`.
Both are read back by the stdlib parser and compared header by header (decoded) and part by
part (type, parameters, decoded content), over every sample reply and over names, subjects and
recipient lists chosen to stress quoting, RFC 2047 encoding and folding. The written bytes
must also be clean on the wire: 7-bit, CRLF only, short lines, no parser defects.
"""

from __future__ import annotations

import base64
import binascii
import email
import random
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from helpers import make_config

from mailbot.config import Config
from mailbot.reply import message as message_module
from mailbot.reply import wire
from mailbot.reply.context import language_of, one_line
from mailbot.reply.ics import calendar_files
from mailbot.reply.message import compose_reply, message_ids, reply_subject, safe_address
from mailbot.reply.render import ReplyRequest, render_bodies
from mailbot.reply.samples import sample_request, sample_requests

NOW = datetime(2018, 1, 5, 10, 0, tzinfo=UTC)
MSGID = "<fixed@ils-forschung.example>"
NAMES = [
    None,
    "Anna",
    "Müller, Anna",
    "O'Connor; Declan",
    'Quote "x" Name \\ back',
    "Ü" * 60,
    "Dr. Jörg-Peter Müller-Lüdenscheidt (Stadt Dortmund, Amt für Wohnen)",
    "=?utf-8?q?not_encoded?=",
]
ADDRESSES = ["a@b.example", "a.very.long.local.part.of.someone@sub.domain.stadt-dortmund.example"]
SUBJECTS = [
    "",
    "Anmeldung",
    "Re: Anmeldung",
    "AW: Anmeldung für die Werkstatt am 22.02.2018 – Konzeptentwicklung „Kommunale Labore“",
    "Registration for the workshop on 22 February 2018, concept development of social labs",
    "x" * 150,
    "ä" * 150,
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("wire"))


@pytest.fixture(autouse=True)
def fixed_msgid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(message_module, "make_msgid", lambda domain: MSGID)


def reference(request: ReplyRequest, config: Config, now: datetime) -> EmailMessage:
    """The reply as `EmailMessage` builds it (how mailbot built replies before reply/wire.py)."""
    language = language_of(request.language, config)
    calendars = calendar_files(request, config, now)
    text, html = render_bodies(request, config, [c.filename for c in calendars])
    organiser = config.organiser
    message = EmailMessage()
    message["From"] = Address(one_line(organiser.name), addr_spec=organiser.address)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = MSGID
    recipients = [(n, a) for n, a in request.recipients if safe_address(a)]
    message["To"] = [Address(one_line(n), addr_spec=a) for n, a in recipients]
    if organiser.reply_to:
        message["Reply-To"] = organiser.reply_to
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
    message["X-Loop"] = organiser.address
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
    message["Content-Language"] = language
    return message


def read(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def meaning(message: EmailMessage) -> dict[str, object]:
    """What a receiving client sees: decoded headers, and every part's type, params and text."""
    headers: dict[str, object] = {}
    for name, raw in message.raw_items():
        if name.lower() == "content-type":
            continue
        value = message[name]
        if name.lower() in ("to", "from", "reply-to"):
            # Names decoded as RFC 2047 says, compared without white space: the stdlib's
            # structured parser puts a space between adjacent encoded words wherever the
            # writer split them, and its own writer loses the one in "Dr. Jörg" when folding.
            decoded = "".join(str(make_header(decode_header(raw))).split())
            headers[name.lower()] = ([a.addr_spec for a in value.addresses], decoded)
        else:
            headers[name.lower()] = str(value)
    parts = []
    for part in message.walk():
        params = {k: v for k, v in part.get_params() or [] if k != "boundary"}
        entry: dict[str, object] = {"type": part.get_content_type(), "params": params}
        if not part.is_multipart():
            entry["content"] = part.get_content()
            entry["filename"] = part.get_filename()
            entry["disposition"] = part.get_content_disposition()
        parts.append(entry)
    return {"headers": headers, "parts": parts}


def assert_clean_wire(raw: bytes) -> None:
    assert raw.isascii(), "every byte 7-bit"
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    for line in head.split(b"\r\n"):
        # Only a header without a place to fold (one 150-character word) may pass 78.
        assert len(line) <= 78 or b" " not in line.strip()[len(b"Subject: ") :], line
    message = read(raw)
    for part in message.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
        for name in part:
            assert not part[name].defects, (name, part[name].defects)


def assert_same(request: ReplyRequest, config: Config) -> None:
    raw = compose_reply(request, config, NOW).raw
    assert_clean_wire(raw)
    written = read(raw)
    expected = read(reference(request, config, NOW).as_bytes(policy=policy.SMTP))
    assert meaning(written) == meaning(expected)


def test_every_sample_reply_matches_the_reference(config: Config) -> None:
    count = 0
    for _label, request in sample_requests(config):
        assert_same(request, config)
        count += 1
    assert count >= 30


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("address", ADDRESSES)
def test_names_and_addresses(config: Config, name: str | None, address: str) -> None:
    base = sample_request("confirmed", "de", config)
    assert_same(replace(base, recipients=[(name, address)], greeting_name=name), config)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("language", ["de", "en"])
def test_subjects(config: Config, subject: str, language: str) -> None:
    base = sample_request("waitlisted", language, config)
    assert_same(replace(base, original_subject=subject), config)


def test_many_recipients_and_references(config: Config) -> None:
    base = sample_request("several_people", "de", config)
    recipients = [(NAMES[i % len(NAMES)], f"person{i}@example.org") for i in range(12)]
    references = tuple(f"<ref-{i}.{'x' * 30}@mail.example.org>" for i in range(15))
    assert_same(replace(base, recipients=recipients, references=references), config)


def test_reply_to_is_carried(config: Config) -> None:
    organiser = config.organiser.model_copy(update={"reply_to": "team@ils-forschung.example"})
    with_reply_to = config.model_copy(update={"organiser": organiser})
    request = sample_request("confirmed", "en", with_reply_to)
    assert_same(request, with_reply_to)
    assert read(compose_reply(request, with_reply_to, NOW).raw)["Reply-To"] == (
        "team@ils-forschung.example"
    )


def test_envelope_and_message_id(config: Config) -> None:
    request = sample_request("several_people", "de", config)
    mail = compose_reply(request, config, NOW)
    assert mail.message_id == MSGID == read(mail.raw)["Message-ID"]
    assert mail.recipients == [a for _n, a in request.recipients]


def test_boundaries_never_occur_in_the_bodies(config: Config) -> None:
    raw = compose_reply(sample_request("confirmed", "de", config), config, NOW).raw
    message = read(raw)
    for part in message.walk():
        mark = part.get_boundary()
        if mark:
            assert raw.count(f"--{mark}".encode()) == len(part.get_payload()) + 1


@pytest.mark.parametrize(
    ("in_reply_to", "references"),
    [("<réf@x.example>", ()), ("<a@b.example>", ("<ä@x.example>",)), ("<ok@x.example>", ("ü",))],
)
def test_non_ascii_message_ids_are_dropped_not_fatal(
    config: Config, in_reply_to: str, references: tuple[str, ...]
) -> None:
    """A sender controls their Message-ID; a reply must still go out (7-bit, no crash)."""
    base = sample_request("confirmed", "de", config)
    request = replace(base, in_reply_to=in_reply_to, references=references)
    raw = compose_reply(request, config, NOW).raw
    assert_clean_wire(raw)
    assert_same(request, config)


def whole_text_qp(text: str) -> bytes:
    """Quoted-printable of the whole text at once: what `quoted_printable` must equal."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


QP_PIECES = ["a", " ", "\t", "=", ".", "ä", "€", "😀", "\n", "\r\n", "\r", "x" * 40, "From "]
QP_EDGES = [
    "",
    "\n",
    "\n\n",
    "ends with a blank ",
    "ends with a tab\t",
    "blank before a break \nnext",
    ".",
    ".\n.\n",
    "a line of exactly seventy-six characters, which needs no soft line break at all.",
    "=" * 100,
    "ä" * 100,
    "x" * 75 + "ä",
    "x" * 200 + " \n",
    "ä" * 600 + "\n" + "x" * 501 + " \nend",  # longer than the lines kept
    "CRLF\r\nand lone CR\rand LF\n",
]


def test_quoted_printable_line_by_line_is_the_whole_text_encoded() -> None:
    rng = random.Random(7)
    texts = QP_EDGES + [
        "".join(rng.choice(QP_PIECES) for _ in range(rng.randrange(1, 120))) for _ in range(2000)
    ]
    for text in texts:
        assert wire.quoted_printable(text) == whole_text_qp(text), repr(text)


def test_base64_lines_are_what_encodebytes_writes() -> None:
    rng = random.Random(7)
    for size in [0, 1, 2, 3, 56, 57, 58, 113, 114, 115, 171, 1000, 2281]:
        data = rng.randbytes(size)
        assert wire.base64_lines(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    "name", ["Jörg Weißenfels", "Ü" * 60, "😀" * 30, "a" * 44 + "é" + "b" * 100, 'Ğ =?x?= "q"']
)
def test_encoded_words_hold_whole_characters_and_decode_to_the_name(name: str) -> None:
    words = wire.encoded_words(name)
    assert all(len(word) <= 72 for word in words)
    chunks = [base64.b64decode(word[len("=?utf-8?b?") : -len("?=")]) for word in words]
    assert "".join(chunk.decode("utf-8") for chunk in chunks) == name  # no character cut
    assert str(make_header(decode_header(" ".join(words)))) == name
