"""Values from mails can never add a header, a recipient or markup to a reply.

Every field that comes from a participant's mail (names, organisation, subject, Message-IDs,
the question text) gets CR/LF with a "Bcc:" line and a "<script>" tag; the reply is then parsed
back as a receiving client would and checked header by header, address by address.
"""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import pytest
from helpers import make_config

from mailbot.config import Config
from mailbot.decide.rules import Decision, Outcome, PersonOutcome, ReplyKind, Route, Status
from mailbot.models import Intent, MailHeaders, ParsedMail, Participant
from mailbot.reply.compose import reply_for
from mailbot.reply.forward import question_forward
from mailbot.reply.message import build_message
from mailbot.reply.render import ReplyItem, ReplyRequest

NOW = datetime(2018, 1, 15, 9, 0, tzinfo=UTC)
EVIL = "Eve\r\nBcc: spy@evil.example\r\nX-Injected: 1\n<script>alert(1)</script>"
FLAT = "Eve Bcc: spy@evil.example X-Injected: 1 <script>alert(1)</script>"  # after one_line
EVIL_ID = "<a@b.example>\r\nBcc: spy@evil.example"
ANNA = "anna@example.org"
REPLY_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-loop",
    "content-language",
    "content-type",
    "mime-version",
}
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("safety"))


def parsed_back(message: EmailMessage) -> EmailMessage:
    raw = message.as_bytes(policy=policy.SMTP)
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def everything(message: EmailMessage) -> str:
    """All header values and all decoded text parts, as one string to search."""
    # Message-IDs look like addresses but are none; the tests check those headers one by one.
    ids = {"message-id", "in-reply-to", "references"}
    texts = [str(v) for k, v in message.items() if k.lower() not in ids]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            texts.append(str(part.get_content()))
    return "\n".join(texts)


def assert_clean(message: EmailMessage, allowed: set[str], config: Config) -> None:
    assert message["X-Injected"] is None and message["Bcc"] is None
    # The hostile name survives only as one line of inert text (escaped in HTML, quoted in
    # headers); take those copies out, and no trace of the injected address may remain.
    text = everything(message)
    for inert in (FLAT, FLAT.replace("<", "&lt;").replace(">", "&gt;")):
        text = text.replace(inert, "")
    text = re.sub(r"Eve Bcc: spy@evil\.example X-Injected: 1", "", text)
    assert "spy@evil.example" not in text
    found = {a.lower() for a in _ADDRESS.findall(text)}
    # UIDs and Message-IDs look like addresses on our own domain; everything else must be allowed.
    found = {a for a in found if not a.endswith("@" + config.organiser.domain)}
    assert found <= allowed
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = str(part.get_content())
            assert "<script" not in html and "&lt;script&gt;" in html


def test_hostile_values_in_every_reply_field(config: Config) -> None:
    for outcome in Outcome:
        request = ReplyRequest(
            kind=ReplyKind.OUTCOMES,
            language="de",
            recipients=[
                (EVIL, ANNA),
                (EVIL, "x@example.org\r\nBcc: spy@evil.example"),
                ("Yves", "y@example.org\n"),  # `$` allows a final newline; the check does not
            ],
            original_subject=EVIL,
            in_reply_to=EVIL_ID,
            references=(EVIL_ID, EVIL),
            greeting_name=EVIL,
            items=[ReplyItem(EVIL, ANNA, "werkstatt-2", outcome, 1)],
        )
        message = parsed_back(build_message(request, config, NOW))
        assert {k.lower() for k in message} == REPLY_HEADERS
        assert [a.addr_spec for a in message["To"].addresses] == [ANNA]  # the bad one dropped
        assert message["In-Reply-To"] == "<a@b.example>"
        assert message["References"] == "<a@b.example>"
        assert "\n" not in message["Subject"] and message["Subject"].startswith("Re: Eve Bcc:")
        assert_clean(message, {ANNA}, config)


def test_hostile_mail_through_compose(config: Config) -> None:
    """From the parsed mail on: organisation, names and subject cannot reach a header."""
    people = [
        Participant(name=EVIL, email=ANNA, organisation=EVIL),
        Participant(name=EVIL, email="bernd@example.org", organisation=EVIL),
    ]
    parsed = ParsedMail(
        intent=Intent.REGISTER,
        participants=people,
        headers=MailHeaders(
            message_id=EVIL_ID, from_address=ANNA, from_name=EVIL, subject=EVIL, references=(EVIL,)
        ),
    )
    decision = Decision(
        Route.PROCESSED,
        "register",
        ReplyKind.OUTCOMES,
        outcomes=[
            PersonOutcome(people[0], "werkstatt-2", Outcome.CONFIRMED, Status.CONFIRMED),
            PersonOutcome(people[1], "werkstatt-2", Outcome.WAITLISTED, Status.WAITLISTED, 1),
        ],
    )
    request = reply_for(decision, parsed, config)
    assert request is not None
    message = parsed_back(build_message(request, config, NOW))
    assert {a.addr_spec for a in message["To"].addresses} == {ANNA, "bernd@example.org"}
    assert_clean(message, {ANNA, "bernd@example.org"}, config)


def test_a_third_persons_address_never_appears(config: Config) -> None:
    """A nameless person who is not a recipient (e.g. a no-reply address) is not spelled out."""
    request = ReplyRequest(
        kind=ReplyKind.OUTCOMES,
        language="en",
        recipients=[("Anna", ANNA)],
        items=[ReplyItem(None, "noreply@elsewhere.example", "werkstatt-2", Outcome.CANCELLED)],
    )
    message = parsed_back(build_message(request, config, NOW))
    assert "noreply@elsewhere.example" not in everything(message)
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            assert "noreply@elsewhere.example" not in str(part.get_content())


def test_hostile_question_forward(config: Config) -> None:
    parsed = ParsedMail(
        intent=Intent.QUESTION,
        headers=MailHeaders(message_id=EVIL_ID, from_address=ANNA, from_name=EVIL, subject=EVIL),
    )
    raw = (
        "From: x\nSubject: y\nContent-Type: text/plain; charset=utf-8\n\n"
        "Gibt es Parkplätze?\nBcc: spy@evil.example\n<script>alert(1)</script>\n"
    ).encode()
    message = question_forward(parsed, raw, config, NOW)
    assert message is not None
    back = parsed_back(message)
    assert back["Bcc"] is None and back["X-Injected"] is None
    assert [a.addr_spec for a in back["To"].addresses] == config.organiser.digest_to
    assert back["Reply-To"].addresses[0].addr_spec == ANNA
    assert "\n" not in back["Subject"]
    body = str(back.get_content())
    # The question is quoted text in a text/plain part: "> Bcc: …" is a line of it, not a header.
    assert "> Gibt es Parkplätze?" in body and "> Bcc: spy@evil.example" in body
    assert back.get_content_type() == "text/plain"


def test_forward_needs_a_sender_address(config: Config) -> None:
    parsed = ParsedMail(
        intent=Intent.QUESTION, headers=MailHeaders(from_address="a@b.example\r\nBcc: c@d.example")
    )
    assert question_forward(parsed, b"Subject: x\n\nFrage?\n", config, NOW) is None
