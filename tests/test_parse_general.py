"""Unit tests for the generalised parser rules (issue 3), each on a small mail built here."""

from __future__ import annotations

import random
from email import message_from_bytes
from email.message import Message

import email_validator
import pytest
from email_validator import validate_email
from test_parse import emails, mail

from mailbot.models import Intent
from mailbot.parse import headers as header_parsing
from mailbot.parse import parse_mail, validate
from mailbot.parse.charsets import decode_bytes
from mailbot.parse.events import mentions
from mailbot.parse.mime import is_attachment
from mailbot.parse.names import clean_name
from mailbot.parse.validate import valid_address

KNOWN = (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("für die zweite und die vierte Werkstatt", [2, 4]),
        ("zur 2., 3. und 4. Werkstatt", [2, 3, 4]),
        ("the second and fourth workshop", [2, 4]),
        ("Werkstätten 2 und 3", [2, 3]),
        ("an allen vier Werkstätten", [1, 2, 3, 4]),
        ("für die 3. melde ich mich auch an", [3]),
        ("die Werkstatt am 22.02.2018", []),
    ],
)
def test_workshop_mentions(text: str, expected: list[int]) -> None:
    assert sorted(set(mentions(text, KNOWN))) == expected


def test_dated_current_workshop_next_to_a_numbered_one() -> None:
    raw = mail("ich melde mich für die Werkstatt am 22. Februar an. Für die 3. auch gleich.\n")
    assert parse_mail(raw).events == [2, 3]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pfarrer Frank Oberländer", "Frank Oberländer"),
        ("Univ.-Prof. Dr. Jan de Boer", "Jan de Boer"),
        ("Dipl.-Soz.-Päd. Anna Meier", "Anna Meier"),
        ("Bürgermeisterin Ulla Brinkschulte", "Ulla Brinkschulte"),
        ("Müller-Lüdenscheidt, Hans-Peter", "Hans-Peter Müller-Lüdenscheidt"),
    ],
)
def test_titles_are_stripped_and_double_names_kept(raw: str, expected: str) -> None:
    assert clean_name(raw) == expected


def test_team_lead_who_does_not_come_is_not_a_participant() -> None:
    raw = mail(
        "Guten Tag,\n\nfür die Werkstatt melde ich zwei Kolleginnen an. Ich selbst kann leider "
        "nicht teilnehmen.\n\nAnna Alt, anna.alt@stadt-essen.example\n"
        "Berta Bein, berta.bein@stadt-essen.example\n\nGruß\nErika Musterfrau\n"
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.REGISTER
    assert emails(parsed) == {"anna.alt@stadt-essen.example", "berta.bein@stadt-essen.example"}


def test_assistant_writing_on_behalf_is_not_a_participant() -> None:
    raw = mail(
        "Dear team,\n\nI am writing on behalf of Mr Niall Brennan, who would like to attend the "
        "workshop. His address is niall.brennan@stadt-essen.example.\n\nKind regards,\n"
        "Erika Musterfrau\nExecutive Assistant\nCity of Essen\n",
        subject="Registration",
    )
    parsed = parse_mail(raw)
    assert [p.name for p in parsed.participants] == ["Niall Brennan"]
    assert parsed.participants[0].organisation == "City of Essen"


def test_proxy_without_a_readable_name_goes_to_review() -> None:
    raw = mail("Hiermit melde ich Herrn Dr. Eichhorn zur Werkstatt an.\n\nGruß\nErika Musterfrau\n")
    parsed = parse_mail(raw)
    assert parsed.participants[0].name is None
    assert "name missing" in (parsed.needs_review or "")


def test_signature_line_without_institution_word_is_the_organisation() -> None:
    raw = mail(
        "Hello,\n\nI'm afraid I have to withdraw from the workshop.\n\nErika Musterfrau\n"
        "Leeds Civic Trust\n",
        subject="Cancellation",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.CANCEL
    assert parsed.participants[0].organisation == "Leeds Civic Trust"


def test_out_of_office_without_headers() -> None:
    raw = mail(
        "Guten Tag,\n\nich bin bis zum 29.01.2018 im Urlaub und habe keinen Zugriff auf meine "
        "E-Mails. In dringenden Fällen wenden Sie sich an info@stadt-essen.example.\n",
        subject="Re: Einladung 2. Werkstatt",
    )
    assert parse_mail(raw).intent == Intent.AUTOREPLY


def test_holiday_in_a_cancellation_is_not_an_out_of_office() -> None:
    raw = mail("Ich bin am 22. leider im Urlaub und kann nicht an der Werkstatt teilnehmen.\n")
    assert parse_mail(raw).intent == Intent.CANCEL


def test_registration_forwarded_as_attachment_is_read() -> None:
    inner = mail(
        "bitte melden Sie mich für die Werkstatt an, ohne Mittagessen.\n\nGruß\nRalf Eichhorn\n",
        sender="Dr. Ralf Eichhorn <ralf.eichhorn@lwl.example>",
    )
    outer = (
        b"From: Monika Sekretariat <sek@lwl.example>\r\nTo: anmeldung@ils-forschung.example\r\n"
        b"Subject: WG: Anmeldung\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nanbei die Anmeldung von Herrn Eichhorn.\r\n"
        b"--x\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--x--\r\n"
    )
    parsed = parse_mail(outer)
    assert parsed.intent == Intent.REGISTER
    assert emails(parsed) == {"ralf.eichhorn@lwl.example"}
    assert parsed.participants[0].name == "Ralf Eichhorn"
    assert parsed.lunch is False
    assert parsed.headers.from_address == "sek@lwl.example"


def test_attachment_is_noted_and_flagged_when_the_details_are_in_it() -> None:
    raw = (
        b"From: Erika Musterfrau <erika@stadt-essen.example>\r\nTo: anmeldung@ils-forschung.example\r\n"
        b"Subject: Anmeldung\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: text/plain\r\n\r\nAnbei meine Anmeldung zur Werkstatt, "
        b"ich melde mich hiermit an.\r\n--x\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="Anmeldung.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--x--\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.attachments == ["Anmeldung.pdf"]
    assert "attachment" in (parsed.needs_review or "")


def test_undeclared_and_mislabelled_charsets() -> None:
    text = "Grüße – „Anmeldung“ für Jürgen"
    assert decode_bytes(text.encode("cp1252")) == (text, True)
    assert decode_bytes(text.encode("cp1252"), "utf-8") == (text, True)
    assert decode_bytes(text.encode("utf-8"), "iso-8859-1") == (text, True)
    raw = mail(text + "\nich melde mich an\n", charset="cp1252").replace(
        b'charset="cp1252"', b'charset="us-ascii"'
    )
    assert parse_mail(raw).participants[0].name == "Erika Musterfrau"


def test_bounce_without_dsn_names_the_failed_address() -> None:
    raw = (
        b"From: MAILER-DAEMON@mail.example.net\r\nTo: anmeldung@ils-forschung.example\r\n"
        b"Subject: failure notice\r\n\r\nHi. This is the qmail-send program at mail.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<rolf.steiner@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.intent == Intent.BOUNCE
    assert parsed.bounced_addresses == ["rolf.steiner@example.net"]


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("Anna.Meier@Stadt-Essen.example", True),
        ("anna meier@stadt-essen.example", False),
        ("anna.meier@stadt-essen", False),
        ("anna..meier@stadt-essen.example", False),
    ],
)
def test_address_validation(address: str, ok: bool) -> None:
    assert (valid_address(address) is not None) is ok


INVITATION = (
    "Die 2. Werkstatt findet am 22. Februar statt, die Reihe hat vier Werkstätten.\n"
    "Bitte melden Sie sich an und sagen Sie, ob Sie am Mittagsimbiss teilnehmen und ob Sie\n"
    "als Referent/in oder Diskussionsteilnehmer/in kommen.\n"
)


@pytest.mark.parametrize(
    "reply_header",
    [
        "Am 15.01.2018 um 10:00 schrieb KoSI-Labs <anmeldung@ils-forschung.example>:",
        "KoSI-Labs <anmeldung@ils-forschung.example> schrieb am 15.01.2018 10:00:00:",
        "Zitat von KoSI-Labs <anmeldung@ils-forschung.example>:",
        "KoSI-Labs <anmeldung@ils-forschung.example> hat am 15.01.2018 um 10:00 geschrieben:",
        "Von: KoSI-Labs <anmeldung@ils-forschung.example>\nGesendet: Montag, 15. Januar 2018\n"
        "An: Roth, Jana\nBetreff: Einladung",
        "Gesendet: Montag, 15. Januar 2018 um 10:00 Uhr\nVon: KoSI-Labs <anmeldung@ils.example>\n"
        "An: jana.roth@example.com\nBetreff: Einladung",
        "On Mon, Jan 15, 2018 at 10:00 AM KoSI-Labs <anmeldung@ils-forschung.example> wrote:",
    ],
)
def test_quoted_invitation_is_not_read_as_the_senders_words(reply_header: str) -> None:
    body = f"Hallo,\n\nich bin am 22. dabei.\n\nGruß\nJana Roth\n\n{reply_header}\n\n{INVITATION}"
    parsed = parse_mail(mail(body, subject="AW: Einladung 2. Werkstatt"))
    assert (parsed.intent, parsed.events, parsed.lunch, parsed.role) == (
        Intent.REGISTER,
        [2],
        None,
        None,
    )


@pytest.mark.parametrize(
    ("subject", "body", "intent", "lunch"),
    [
        ("Werkstatt", "gerne komme ich am 22.2. zur Werkstatt, allerdings ohne Mittagessen.", "register", False),
        ("Anmeldung 2 Personen", "wir kommen zu zweit, beide mit Mittagessen.", "register", True),
        ("Re: Anmeldebestaetigung KoSI", "ich kann leider doch nicht kommen.", "cancel", None),
        ("Mittagessen", "ich bin schon angemeldet und komme nun doch zum Mittagessen.", "update", True),
        ("Workshop", "I'd like to sign up for the workshop on 22 February. I'll skip lunch.", "register", False),
        ("Question", "Can I bring a colleague to the workshop? She is not registered yet.", "question", None),
    ],
)  # fmt: skip
def test_everyday_phrasings(subject: str, body: str, intent: str, lunch: bool | None) -> None:
    parsed = parse_mail(mail(f"Hallo,\n\n{body}\n\nJana Roth\n", subject=subject))
    assert (parsed.intent.value, parsed.lunch) == (intent, lunch)


@pytest.mark.parametrize(
    ("signature", "org"),
    [
        ("Jana Roth\nReferentin\nStadt Gelsenkirchen\nReferat Stadtplanung\nTel. 0209 000", "Stadt Gelsenkirchen"),
        ("Jana Roth\n\n--\nDr. Jana Roth | Mitarbeiterin\nInstitut für Stadtbauwesen, RWTH Aachen University", "RWTH Aachen University"),
        ("Jana Roth\nMinisterium für Heimat, Kommunales, Bau und Gleichstellung des Landes NRW", "Ministerium für Heimat, Kommunales, Bau und Gleichstellung des Landes NRW"),
        ("i.A. Jana Roth\n\nKreisverwaltung Mettmann\nAmt 50 – Soziales", "Kreisverwaltung Mettmann"),
        ("Jana Roth\nProject Manager\nEUROCITIES\nSquare de Meeûs 1, Brussels", "EUROCITIES"),
        ("Jana Roth\nAWO Unterbezirk Dortmund", "AWO Unterbezirk Dortmund"),
        ("Jana Roth\nStadtteilbüro Hamm-Norden", "Stadtteilbüro Hamm-Norden"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("sender", ["Jana Roth <jana.roth@org.example>", "jana.roth@org.example"])
def test_organisation_from_the_signature(signature: str, org: str, sender: str) -> None:
    body = f"Hallo,\n\nhiermit melde ich mich zur Werkstatt an.\n\nMit freundlichen Grüßen\n{signature}\n"
    [person] = parse_mail(mail(body, sender=sender)).participants
    assert (person.name, person.organisation) == ("Jana Roth", org)


def _is_attachment_the_slow_way(part: Message) -> bool:
    """is_attachment without its shortcut: the answer the shortcut must keep."""
    try:
        disposition = str(part.get("Content-Disposition", "")).lower()
        return disposition.startswith("attachment") or (
            bool(part.get_filename()) and not disposition.startswith("inline")
        )
    except Exception:
        return True


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/plain; charset*=utf-8''x; charset*0=y",  # get_filename raises
        "Content-Type: application/pdf; name=anmeldung.pdf",
        "Content-Type: application/pdf; NAME*0=anm; NAME*1=eldung.pdf",
        "Content-Type: text/plain\nContent-Disposition: inline",
        "Content-Type: text/plain\nContent-Disposition: inline; filename=a.txt",
        "Content-Type: text/plain\nContent-Disposition: attachment",
        "Content-Type: text/plain\nContent-Disposition: ",
        "Content-Type: text/plain; format=flowed; delsp=yes",
        "",
    ],
)
def test_is_attachment_shortcut_keeps_every_answer(headers: str) -> None:
    part = message_from_bytes(f"{headers}\n\nHallo\n".encode())
    assert is_attachment(part) == _is_attachment_the_slow_way(part)


def generated_addresses(count: int) -> list[str]:
    """Addresses near the edges of the plain form: odd characters, dots, hyphens, IDNA-like
    and reserved names, long labels and local parts, numeric top-level domains. Plain
    pieces come more often, so that many addresses are plain and many only nearly."""
    rng = random.Random(11)
    local_pieces = ["anna", "a", "9", ".", "_", "+", "-", "..", "meier", "x" * 30, "ä", "!", " "]
    local_weights = [8, 4, 4, 3, 2, 2, 2, 1, 8, 1, 1, 1, 1]
    labels = ["stadt", "a", "1", "-", "x" * 62, "x" * 63, "x" * 64, "xn--", "ab--c", "a-b", "ß"]
    label_weights = [10, 6, 4, 2, 1, 1, 1, 1, 1, 3, 1]
    tops = ["de", "example", "org", "test", "local", "localhost", "arpa", "onion", "invalid",
            "com1", "123", "x", "co-op", "xn--p1ai", "a" * 63, "a" * 64]  # fmt: skip
    addresses = []
    for _ in range(count):
        local = "".join(rng.choices(local_pieces, local_weights, k=rng.randint(1, 4)))
        hosts = [
            "".join(rng.choices(labels, label_weights, k=rng.randint(1, 2)))
            for _ in range(rng.randint(0, 3))
        ]
        addresses.append(f"{local}@{'.'.join([*hosts, rng.choice(tops)])}")
    return addresses


def test_plain_addresses_are_ones_email_validator_accepts() -> None:
    """The fast path (`_plain`) never accepts what email-validator refuses."""
    plain = 0
    for address in generated_addresses(20_000):
        if validate._plain(address):
            plain += 1
            validate_email(address, check_deliverability=False, test_environment=True)
    assert plain > 1_000  # the generator does reach the fast path


def test_special_use_domains_are_left_to_email_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path reads email-validator's own list, also when a version adds to it."""
    assert not validate._plain("anna@mail.localhost")
    assert not validate._plain("anna@x.onion")
    assert validate._plain("anna@stadt.test")  # a test environment, as we ask for
    monkeypatch.setattr(
        email_validator,
        "SPECIAL_USE_DOMAIN_NAMES",
        [*email_validator.SPECIAL_USE_DOMAIN_NAMES, "zz"],
    )
    assert not validate._plain("anna@stadt.zz")


@pytest.mark.parametrize(
    "address",
    [
        "anna.meier@stadt-essen.example",
        "kerstin.yilmaz.2001@stadt-dortmund.example",
        "first_last+tag@sub.domain.example.org",
        "a@b.de",
        f"{'x' * 64}@example.org",
    ],
)
def test_common_addresses_take_the_fast_path(address: str) -> None:
    assert validate._plain(address)
    assert valid_address(address) == address


def test_address_lists_without_quotes_split_as_the_full_splitter_does() -> None:
    """`_split_address_list` takes a shortcut when a header has no quotes and no comments;
    the parts are those of the character-by-character splitter, also for broken headers."""
    rng = random.Random(5)
    pieces = ["a@b.example", "Anna", " ", ",", "<", ">", "x@y", ")", "\\", "=?utf-8?q?M=C3=BC?="]
    values = ["", ",", "<,>", "a <b,c> , d", "a <b, c", "a > b, c", ">,<,", "x) , y"]
    values += ["".join(rng.choices(pieces, k=rng.randint(1, 12))) for _ in range(5000)]
    fast, full = header_parsing._split_address_list, header_parsing._split_quoted_address_list
    for value in values:
        assert '"' not in value and "(" not in value
        assert fast(value) == full(value)
