"""Unit tests for mailbot.parse on small mails built here (no corpus files needed)."""

from __future__ import annotations

import random
from email.message import Message

import pytest

from mailbot.models import Intent, Role
from mailbot.parse import parse_mail
from mailbot.parse.autoreply import auto_reply_reason, bounced_addresses, is_bounce
from mailbot.parse.mime import decode_header_value, html_to_text, parse_bytes
from mailbot.parse.names import clean_name, name_matches_address
from mailbot.parse.quotes import split_quoted


def mail(
    body: str,
    *,
    subject: str = "Anmeldung",
    sender: str = "Erika Musterfrau <erika.musterfrau@stadt-essen.example>",
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
    ctype: str = "text/plain",
) -> bytes:
    lines = [
        f"From: {sender}",
        "To: anmeldung@ils-forschung.example",
        f"Subject: {subject}",
        "Date: Tue, 16 Jan 2018 10:00:00 +0100",
        "Message-ID: <test-1@example.org>",
        "MIME-Version: 1.0",
        f'Content-Type: {ctype}; charset="{charset}"',
        "Content-Transfer-Encoding: 8bit",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body.encode(charset)


def emails(parsed: object) -> set[str]:
    return {p.email for p in parsed.participants}  # type: ignore[attr-defined]


def test_form_registration_german() -> None:
    raw = mail(
        "Guten Tag,\n\nbitte melden Sie mich an.\n\n"
        "Name: Prof. Dr. Erika Musterfrau\nOrganisation: Stadt Essen\n"
        "E-Mail: Erika.Musterfrau@Stadt-Essen.example\nMittagessen: nein\n"
        "Rolle: Referentin\n\nGruß\nErika Musterfrau\n"
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.REGISTER
    assert parsed.language == "de"
    assert parsed.events == [2]
    [person] = parsed.participants
    assert person.name == "Erika Musterfrau"
    assert person.email == "erika.musterfrau@stadt-essen.example"
    assert person.organisation == "Stadt Essen"
    assert parsed.lunch is False
    assert parsed.role == Role.SPEAKER
    assert parsed.needs_review is None


def test_prose_german_with_signature_and_events() -> None:
    raw = mail(
        "Hallo,\n\nich möchte mich für die dritte Werkstatt anmelden und nehme als "
        "Diskussionsteilnehmer teil. Zum Mittagessen bleibe ich gern, ich esse vegetarisch.\n\n"
        "Beste Grüße\nKarl Beispiel\n\nLandkreis Beispielstadt\nAbteilung Planung\n",
        sender="Karl Beispiel <k.beispiel@lk-beispiel.example>",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.REGISTER
    assert parsed.events == [3]
    assert emails(parsed) == {"k.beispiel@lk-beispiel.example"}
    assert parsed.participants[0].organisation == "Landkreis Beispielstadt"
    assert parsed.lunch is True
    assert parsed.role == Role.PARTICIPANT
    assert parsed.notes == "vegetarisch"


def test_prose_english_two_people() -> None:
    raw = mail(
        "Dear organisers,\n\nwe would like to register for the workshop:\n\n"
        "* Jane Doe, jane.doe@citylab.example\n* Dr. John Roe, john.roe@citylab.example\n\n"
        "We will both skip lunch.\n\nBest regards,\nJane Doe\nCityLab Foundation\n",
        sender="Jane Doe <jane.doe@citylab.example>",
        subject="Workshop registration",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.REGISTER
    assert parsed.language == "en"
    assert emails(parsed) == {"jane.doe@citylab.example", "john.roe@citylab.example"}
    assert {p.name for p in parsed.participants} == {"Jane Doe", "John Roe"}
    assert {p.organisation for p in parsed.participants} == {"CityLab Foundation"}
    assert parsed.lunch is False


def test_cancellation() -> None:
    raw = mail(
        "Liebes Team,\n\nleider muss ich meine Teilnahme an der Werkstatt absagen.\n\n"
        "Viele Grüße\nErika Musterfrau\n",
        subject="Absage",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.CANCEL
    assert emails(parsed) == {"erika.musterfrau@stadt-essen.example"}
    assert parsed.lunch is None and parsed.role is None


def test_english_cancellation() -> None:
    raw = mail(
        "Hi,\n\nI'm afraid I have to cancel my registration for the workshop on 22 February.\n\n"
        "Best,\nTom Example\n",
        sender="Tom Example <tom@example.org>",
        subject="Workshop",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.CANCEL
    assert parsed.language == "en"


def test_update_substitute_lists_both() -> None:
    raw = mail(
        "Sehr geehrte Damen und Herren,\n\nich bin verhindert. An meiner Stelle kommt "
        "mein Kollege Herr Max Mustermann (max.mustermann@stadt-essen.example).\n\n"
        "Mit freundlichen Grüßen\nErika Musterfrau\nStadt Essen\n",
        subject="Vertretung Werkstatt",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.UPDATE
    assert emails(parsed) == {
        "erika.musterfrau@stadt-essen.example",
        "max.mustermann@stadt-essen.example",
    }
    assert {p.organisation for p in parsed.participants} == {"Stadt Essen"}


def test_out_of_office_by_header() -> None:
    raw = mail(
        "Ich bin bis 5. Februar nicht im Büro.",
        subject="Re: Werkstatt",
        headers={"Auto-Submitted": "auto-replied"},
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.AUTOREPLY
    assert parsed.headers.no_reply_reason == "Auto-Submitted: auto-replied"
    assert parsed.participants == [] and parsed.events == []


def test_out_of_office_by_subject_only() -> None:
    raw = mail(
        "Thank you for your message. I am out until Monday.", subject="Out of Office: Anmeldung"
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.AUTOREPLY
    assert parsed.events == []


def test_bounce_with_delivery_status() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: anmeldung@ils-forschung.example\r\n"
        b"Return-Path: <>\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
        b"\r\nFinal-Recipient: rfc822; Gone.Person@example.net\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n--b--\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.BOUNCE
    assert parsed.bounced_addresses == ["gone.person@example.net"]
    assert parsed.headers.no_reply_reason == "empty Return-Path"
    assert parsed.headers.return_path == ""
    msg = parse_bytes(raw)
    assert is_bounce(msg) and bounced_addresses(msg) == ["gone.person@example.net"]


def test_quoted_invitation_is_not_a_registration() -> None:
    raw = mail(
        "Danke, ich leite das an unseren Verteiler weiter.\n\nGruß\nErika\n\n"
        "Am 10.01.2018 um 09:30 schrieb KoSI-Labs Team:\n"
        "> Die Werkstattreihe umfasst vier Termine:\n> 1. Werkstatt\n> 2. Werkstatt\n"
        "> Bitte melden Sie sich bis 9. Februar an. Ich melde mich gern an.\n",
        subject="Re: Einladung",
    )
    parsed = parse_mail(raw)
    assert parsed.intent not in (Intent.REGISTER, Intent.CANCEL, Intent.UPDATE)
    assert parsed.participants == []


def test_outlook_quote_header_is_cut() -> None:
    text = (
        "Ich komme nicht.\n\nVon: Team <a@b.example>\nGesendet: Montag, 1. Januar 2018\n"
        "An: X\nBetreff: Einladung\n\nBitte melden Sie sich an."
    )
    split = split_quoted(text)
    assert split.own == "Ich komme nicht."
    assert "Bitte melden" in split.quoted


def test_titles_stripped() -> None:
    assert clean_name("Prof. Dr.-Ing. Stefan Beispiel") == "Stefan Beispiel"
    assert clean_name("Dr. ir. Maarten de Vries") == "Maarten de Vries"
    assert clean_name("Dipl.-Ing. Hans Muster") == "Hans Muster"
    assert clean_name("Muster, Hans Dr.") == "Hans Muster"
    assert clean_name("Poststelle Stadt Hamm") is None
    assert name_matches_address("Jörg Weißenfels", "joerg.weissenfels@x.example")
    assert name_matches_address("Maarten de Vries", "m.devries@x.example")


def test_charset_cp1252_and_latin1() -> None:
    body = "Hiermit melde ich mich zur Werkstatt an. Grüße, Jürgen Weiß – Stadt Köln"
    for charset in ("cp1252", "latin-1"):
        safe = body.replace("–", "-") if charset == "latin-1" else body
        parsed = parse_mail(mail(safe, charset=charset, sender="Juergen <j.weiss@koeln.example>"))
        assert parsed.intent == Intent.REGISTER
    # declared wrongly as us-ascii but really cp1252: still readable
    raw = mail(body, charset="cp1252").replace(b'charset="cp1252"', b'charset="us-ascii"')
    assert parse_mail(raw).intent == Intent.REGISTER
    assert decode_header_value("=?iso-8859-1?Q?J=FCrgen_Wei=DF?=") == "Jürgen Weiß"


def test_html_only() -> None:
    html = (
        "<html><head><style>p{x:y}</style></head><body><p>Sehr geehrte Damen und Herren,</p>"
        "<p>hiermit melde ich mich f&uuml;r die Werkstatt an.<br>Am Mittagsimbiss nehme ich "
        "teil.</p><p>Mit freundlichen Gr&uuml;&szlig;en<br>Anna Beispiel<br>Stadt Bonn</p>"
        "</body></html>"
    )
    parsed = parse_mail(
        mail(html, ctype="text/html", sender="Anna Beispiel <anna.beispiel@bonn.example>")
    )
    assert parsed.intent == Intent.REGISTER
    assert parsed.lunch is True
    assert parsed.participants[0].organisation == "Stadt Bonn"
    assert "p{x:y}" not in html_to_text(html)


def test_newsletter_is_other() -> None:
    raw = mail(
        "Unser Workshop-Angebot: melden Sie sich jetzt an!",
        subject="Newsletter",
        headers={"List-Unsubscribe": "<mailto:x@example.org>", "Precedence": "bulk"},
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.OTHER
    assert parsed.headers.no_reply_reason == "Precedence: bulk"


def test_question() -> None:
    raw = mail("Gibt es am Veranstaltungsort Parkplätze? Dann würde ich mich anmelden.")
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.QUESTION
    assert parsed.participants == []
    assert parsed.events == [2]


def test_unrelated_is_other() -> None:
    parsed = parse_mail(mail("Die Rechnung Nr. 4711 ist fällig.", subject="Rechnung"))
    assert parsed.intent == Intent.OTHER and parsed.events == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Return-Path", "<>", "empty Return-Path"),
        ("From", "noreply@shop.example", "From is noreply"),
        ("Auto-Submitted", "auto-generated", "Auto-Submitted: auto-generated"),
        ("Precedence", "junk", "Precedence: junk"),
        ("List-Id", "<x.example>", "List-Id header"),
        ("X-Auto-Response-Suppress", "DR, OOF", "X-Auto-Response-Suppress: oof"),
        ("X-Autoreply", "yes", "X-Autoreply header"),
        ("X-MS-Exchange-Inbox-Rules-Loop", "a@b.example", "X-MS-Exchange-Inbox-Rules-Loop header"),
    ],
)
def test_auto_reply_reason_rules(name: str, value: str, expected: str) -> None:
    msg = Message()
    msg["From"] = "person@example.org"
    msg[name] = value
    assert auto_reply_reason(msg) == expected


def test_auto_submitted_no_is_fine() -> None:
    msg = Message()
    msg["From"] = "person@example.org"
    msg["Auto-Submitted"] = "no"
    assert auto_reply_reason(msg) is None


_REGISTRATION = (
    "Guten Tag,\n\nhiermit melde ich mich zur 2. Werkstatt an.\n\n"
    "Mit freundlichen Grüßen\nErika Musterfrau\n"
)


@pytest.mark.parametrize("value", ["no", "No", "no; reason=x", "no (human)", "(sent by hand) NO"])
def test_auto_submitted_no_with_parameters_or_comments_is_a_person(value: str) -> None:
    """RFC 3834: a keyword, then parameters after ";", comments anywhere. "no" in any of
    these spellings is a person's mail: registered and answered, not left in the inbox."""
    parsed = parse_mail(mail(_REGISTRATION, headers={"Auto-Submitted": value}))
    assert parsed.headers.no_reply_reason is None
    assert parsed.intent == Intent.REGISTER
    assert emails(parsed) == {"erika.musterfrau@stadt-essen.example"}


@pytest.mark.parametrize(
    ("value", "keyword"),
    [
        ("auto-replied", "auto-replied"),
        ("Auto-Replied", "auto-replied"),
        ("auto-generated; foo", "auto-generated"),
        ("auto-replied (vacation); owner=erika", "auto-replied"),
        ("((nested) comment) auto-generated", "auto-generated"),
    ],
)
def test_auto_submitted_by_a_machine_is_never_answered(value: str, keyword: str) -> None:
    parsed = parse_mail(mail(_REGISTRATION, headers={"Auto-Submitted": value}))
    assert parsed.headers.no_reply_reason == f"Auto-Submitted: {keyword}"
    assert parsed.intent in (Intent.AUTOREPLY, Intent.OTHER)
    assert parsed.participants == []


def test_auto_replied_with_parameters_is_an_auto_reply() -> None:
    raw = mail(
        "Ich bin bis 5. Februar nicht im Büro.",
        subject="Re: Werkstatt",
        headers={"Auto-Submitted": "Auto-Replied; owner=erika (Urlaub)"},
    )
    assert parse_mail(raw).intent == Intent.AUTOREPLY


def test_headers_filled() -> None:
    raw = mail(
        "Ich melde mich an.",
        headers={"In-Reply-To": "<a@x>", "References": "<z@x> <a@x>", "Reply-To": "R@X.example"},
    )
    h = parse_mail(raw).headers
    assert h.message_id == "<test-1@example.org>"
    assert h.from_address == "erika.musterfrau@stadt-essen.example"
    assert h.from_name == "Erika Musterfrau"
    assert h.reply_to == "r@x.example"
    assert h.in_reply_to == "<a@x>" and h.references == ("<z@x>", "<a@x>")
    assert h.date is not None and h.date.tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"From: \r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--",
        b"Subject: =?x-bogus?Q?=FF?=\r\n\r\nhi",
        b"\n" * 1000,
        "text".encode("utf-16"),
    ],
)
def test_never_raises_on_garbage(raw: bytes) -> None:
    parsed = parse_mail(raw)
    assert parsed.intent in set(Intent)


def test_never_raises_on_mutations() -> None:
    base = mail("Name: Erika Musterfrau\nE-Mail: erika@example.org\nIch melde mich an.")
    rng = random.Random(1234)
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        parse_mail(bytes(data))


def test_deep_nesting_is_bounded() -> None:
    depth = 60
    parts = [
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    ]
    raw = (
        "MIME-Version: 1.0\r\n" + "".join(parts) + "Content-Type: text/plain\r\n\r\nhi\r\n"
    ).encode()
    parse_mail(raw)
