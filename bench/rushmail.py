"""Shared by bench/rush.py and bench/latency.py: the servers, a config for them, and rush mail.

Why a generator and not the corpus itself: a rush needs thousands of *different* people (one
seat per address), and the 60 mails of /work/shared/corpora/registrations-dev are only 60
people. So the generator writes mails in the shapes that corpus has — German forms, German and
English prose with signatures, HTML mail, quoted-printable and 8bit, two people in one mail,
the whole series — with a unique address per person, plus a few cancellations (which promote
someone from the waiting list), second registrations of the same address and out-of-office
replies. It is seeded, so every run and every machine gets the same N mails.

The servers come from tests/servers.py (a private Dovecot on a free loopback port and the
aiosmtpd sink the test suite uses): the benchmark measures the code against the same servers
the tests trust.
"""

from __future__ import annotations

import compileall
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from imapclient import IMAPClient

REPO = Path(__file__).resolve().parents[1]
for _extra in (REPO, REPO / "tests"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))

from servers import Dovecot, SmtpSink  # noqa: E402

__all__ = [
    "Dovecot",
    "RushMail",
    "SmtpSink",
    "append_all",
    "compile_mailbot",
    "rush_mails",
    "write_config",
]

BERLIN = ZoneInfo("Europe/Berlin")
ORGANISER = "anmeldung@ils-forschung.example"
# The first mail of the rush; all of them arrive before the 2nd workshop's deadline (9 Feb).
RUSH_START = datetime(2018, 1, 8, 8, 0, tzinfo=BERLIN)
RUSH_SPAN = timedelta(days=30)

FIRST_DE = [
    "Katrin", "Jörg", "Martin", "Aylin", "Friederike", "Ulrike", "Sven", "Lena", "Reinhard",
    "Sabine", "Thomas", "Büşra", "Matthias", "Anja", "Dirk", "Özlem", "Kerstin", "Heiko",
]  # fmt: skip
LAST_DE = [
    "Böhmer", "Weißenfels", "Hülsbusch", "Yılmaz", "Oberhaus-Kemper", "Hollmann", "Marquardt",
    "Scholz", "Schäfer", "Krüger", "Große-Wilde", "Nowak", "Kowalski", "Brandt", "Lübke",
]  # fmt: skip
FIRST_EN = ["Maarten", "Sofia", "Declan", "Emma", "James", "Priya", "Lucas", "Hannah"]
LAST_EN = ["de Vries", "Papadopoulou", "O'Connor", "Whitfield", "Okafor", "Lindqvist"]
ORGS_DE = [
    ("Stadt Dortmund", "stadt-dortmund.example"),
    ("Hochschule Bochum", "hs-bochum.example"),
    ("Stadt Wuppertal", "stadt.wuppertal.example"),
    ("Technische Universität Dortmund", "tu-dortmund.example"),
    ("Wohnen am Hellweg eG", "wohnen-am-hellweg.example"),
    ("Quartiersbüro Nordstadt e. V.", "nordstadt-quartier.example"),
]
ORGS_EN = [
    ("Delft University of Technology", "tudelft.example"),
    ("University College Dublin", "ucd.example"),
    ("Bergische Universität Wuppertal", "uni-wuppertal.example"),
]

# Shares of the rush, by kind. Registrations dominate; the rest is what a real rush brings.
KINDS: list[tuple[str, float]] = [
    ("form_de", 0.30),
    ("prose_de", 0.24),
    ("prose_en", 0.14),
    ("html_de", 0.10),
    ("two_people_de", 0.05),
    ("series_de", 0.04),
    ("cancel", 0.05),
    ("duplicate", 0.05),
    ("autoreply", 0.03),
]


@dataclass(frozen=True)
class RushMail:
    raw: bytes
    arrival: datetime
    kind: str


@dataclass(frozen=True)
class _Person:
    name: str
    email: str
    organisation: str
    english: bool


def _ascii(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ı": "i", "ş": "s"})
    return re.sub(r"[^a-z0-9.-]", "", text.lower().translate(table).replace(" ", "-"))


def _person(rng: random.Random, i: int, english: bool) -> _Person:
    first = rng.choice(FIRST_EN if english else FIRST_DE)
    last = rng.choice(LAST_EN if english else LAST_DE)
    org, domain = rng.choice(ORGS_EN if english else ORGS_DE)
    return _Person(f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}.{i}@{domain}", org, english)


def _message(sender: _Person, subject: str, when: datetime, i: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{sender.name} <{sender.email}>"
    message["To"] = ORGANISER
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = f"<rush-{i}-{random.Random(i).getrandbits(48):x}@mail.example>"
    return message


def _signature(p: _Person) -> str:
    return f"\n-- \n{p.name}\n{p.organisation}\nTel. 0231 50-{10000 + hash(p.email) % 89999}\n"


def _form_de(p: _Person, lunch: bool) -> str:
    return (
        "Sehr geehrte Damen und Herren,\n\nhiermit melde ich mich verbindlich zur 2. Werkstatt "
        f"am 22. Februar 2018 an.\n\nName: {p.name}\nOrganisation: {p.organisation}\n"
        f"E-Mail: {p.email}\nMittagsimbiss: {'ja' if lunch else 'nein'}\n\n"
        f"Mit freundlichen Grüßen\n{p.name}\n"
    )


def _prose_de(p: _Person, lunch: bool) -> str:
    return (
        "Sehr geehrte Damen und Herren,\n\nvielen Dank für die Einladung zur Werkstatt "
        "„Konzeptentwicklung“. Gerne möchte ich am 22. Februar als Diskussionsteilnehmerin "
        "dabei sein. Wir beschäftigen uns gerade intensiv mit der Frage, wie sich "
        "Beteiligungsformate im Quartier verstetigen lassen.\n\n"
        + ("Am Mittagsimbiss nehme ich gerne teil.\n\n" if lunch else "")
        + f"Mit freundlichen Grüßen\n\n{p.name}\n"
        + _signature(p)
    )


def _prose_en(p: _Person, lunch: bool) -> str:
    return (
        "Dear organisers,\n\nI would like to register for the 2nd KoSI-Lab workshop on "
        "22 February 2018 in Dortmund. Our group works on urban living labs and I would be glad "
        "to join the discussion.\n\n"
        + ("I would also like to join the lunch; I am vegetarian.\n\n" if lunch else "")
        + f"Kind regards,\n{p.name}\n{p.organisation}\n"
    )


def _two_people_de(p: _Person, q: _Person) -> str:
    return (
        "Guten Tag,\n\nfür die 2. Werkstatt am 22.02.2018 melde ich mich und meine Kollegin an:"
        f"\n\n1. {p.name}, {p.email}\n2. {q.name}, {q.email}\n\nBeide nehmen am Mittagsimbiss "
        f"teil.\n\nViele Grüße\n{p.name}\n{p.organisation}\n"
    )


def _series_de(p: _Person) -> str:
    return (
        "Liebes KoSI-Labs-Team,\n\nich würde die Reihe gern kontinuierlich begleiten und melde "
        "mich hiermit für alle vier Werkstätten an.\n\nZum Mittagsimbiss: ja, sehr gern.\n\n"
        f"Herzliche Grüße\n{p.name}\n" + _signature(p)
    )


def _cancel(p: _Person) -> str:
    if p.english:
        return (
            "Dear organisers,\n\nunfortunately I have to cancel my registration for the 2nd "
            f"workshop on 22 February. Please give my seat to someone else.\n\nBest,\n{p.name}\n"
        )
    return (
        "Sehr geehrte Damen und Herren,\n\nleider muss ich meine Anmeldung zur 2. Werkstatt am "
        "22. Februar absagen, da ein anderer Termin dazwischengekommen ist. Bitte geben Sie "
        f"meinen Platz weiter.\n\nMit freundlichen Grüßen\n{p.name}\n"
    )


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{block.replace(chr(10), '<br>')}</p>" for block in text.split("\n\n"))
    return f"<html><body style='font-family:Calibri'>{paragraphs}</body></html>"


def rush_mails(n: int, seed: int = 7) -> Iterator[RushMail]:
    """N mails of a registration rush, in arrival order, all before the deadline. Streamed."""
    rng = random.Random(seed)
    kinds, weights = zip(*KINDS, strict=True)
    registered: list[_Person] = []
    step = RUSH_SPAN / max(n, 1)
    for i in range(n):
        when = RUSH_START + step * i
        kind = rng.choices(kinds, weights)[0]
        if kind in ("cancel", "duplicate") and len(registered) < 10:
            kind = "form_de"
        english = kind == "prose_en"
        p = _person(rng, i, english)
        lunch = rng.random() < 0.7
        if kind == "form_de":
            message = _message(p, "Anmeldung 2. Werkstatt", when, i)
            message.set_content(_form_de(p, lunch), cte=rng.choice(["8bit", "quoted-printable"]))
        elif kind == "prose_de":
            message = _message(p, "Anmeldung KoSI-Labs Werkstatt 22.02.2018", when, i)
            message.set_content(_prose_de(p, lunch), cte="quoted-printable")
        elif kind == "prose_en":
            message = _message(p, "Registration: KoSI-Lab workshop 22 February", when, i)
            message.set_content(_prose_en(p, lunch))
        elif kind == "html_de":
            message = _message(p, "Anmeldung zur Werkstatt am 22.02.", when, i)
            text = _prose_de(p, lunch)
            message.set_content(text, cte="quoted-printable")
            message.add_alternative(_html(text), subtype="html", cte="quoted-printable")
        elif kind == "two_people_de":
            q = _person(rng, n + i, False)
            message = _message(p, "Anmeldung von zwei Personen", when, i)
            message.set_content(_two_people_de(p, q))
            registered.append(q)
        elif kind == "series_de":
            message = _message(p, "Anmeldung Werkstattreihe KoSI-Labs", when, i)
            message.set_content(_series_de(p), cte="quoted-printable")
        elif kind == "cancel":
            p = registered.pop(rng.randrange(len(registered)))
            message = _message(
                p, "Absage 2. Werkstatt" if not p.english else "Cancellation", when, i
            )
            message.set_content(_cancel(p))
        elif kind == "duplicate":
            p = rng.choice(registered)
            message = _message(p, "Anmeldung 2. Werkstatt", when, i)
            message.set_content(_form_de(p, lunch))
        else:  # autoreply: an out-of-office answer to the invitation; never answered
            message = _message(p, f"Abwesenheitsnotiz: Einladung ({p.name})", when, i)
            message["Auto-Submitted"] = "auto-replied"
            message.set_content(
                f"Ich bin bis zum 15.01. nicht im Büro. In dringenden Fällen wenden Sie sich "
                f"bitte an das Sekretariat.\n\n{p.name}\n"
            )
        if kind not in ("cancel", "duplicate", "autoreply"):
            registered.append(p)
        yield RushMail(message.as_bytes(), when, kind)


def append_all(server: Dovecot, mails: Iterator[RushMail], folder: str = "INBOX") -> int:
    """APPEND every mail over one IMAP connection, with its arrival as INTERNALDATE."""
    count = 0
    with server.client(timeout=60) as imap:
        if folder.upper() != "INBOX" and not imap.folder_exists(folder):
            imap.create_folder(folder)
        for mail in mails:
            imap.append(folder, mail.raw, msg_time=mail.arrival)
            count += 1
        imap.logout()
    return count


def compile_mailbot() -> None:
    """Write mailbot's bytecode before anything is timed, as `pip install` does.

    A checkout run with PYTHONDONTWRITEBYTECODE set (as on CI machines and this sandbox) never
    keeps bytecode, so every `poll --once` would compile mailbot's sources first: about 0.1 s
    of each run's start that an installed mailbot does not pay.
    """
    compileall.compile_dir(REPO / "mailbot", quiet=1)


def empty_account(server: Dovecot) -> None:
    """Back to an empty INBOX and no other folders (UIDs keep growing; mailbot must cope)."""
    server.reset()


def imap_client(server: Dovecot) -> IMAPClient:
    return server.client(timeout=120)


def write_config(
    directory: Path,
    server: Dovecot,
    sink: SmtpSink,
    *,
    database: Path,
    capacity: int,
    batch_size: int = 50,
    poll_seconds: int = 60,
    max_per_hour: int = 1_000_000,
) -> Path:
    """The shipped config.toml pointed at `server` and `sink`, a fresh database and `capacity` seats.

    Plain text replacements on the shipped file, checked afterwards by loading the result, so
    the benchmark runs exactly the configuration users get apart from these keys.
    """
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    replacements = [
        (r'(?m)^templates = "templates"', f'templates = "{REPO / "templates"}"'),
        (r"(?m)^port = 143\b", f"port = {server.port}"),
        (r"(?m)^port = 25\b", f"port = {sink.port}"),
        (r'(?m)^password = "change-me"$', f'password = "{server.password}"'),
        (r'(?m)^url = "sqlite:///mailbot.sqlite3"$', f'url = "sqlite:///{database}"'),
        (r"(?m)^batch_size = \d+", f"batch_size = {batch_size}"),
        (r"(?m)^poll_seconds = \d+", f"poll_seconds = {poll_seconds}"),
        (r"(?m)^capacity = \d+", f"capacity = {capacity}"),
        (r"(?m)^timeout_seconds = \d+", "timeout_seconds = 120"),
        # The loop brake would spread a rush over hours (300 replies an hour by default); the
        # benchmark measures throughput, so the brake is set above anything a run sends.
        (r"(?m)^max_replies_per_hour = \d+", f"max_replies_per_hour = {max_per_hour}"),
    ]
    for pattern, new in replacements:
        text, count = re.subn(pattern, new, text)
        if count == 0:
            raise RuntimeError(f"config.toml changed shape: no line matches {pattern!r}")
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    from mailbot.config import load_config

    config = load_config(path)
    assert config.imap.port == server.port and config.smtp.port == sink.port
    assert all(e.capacity == capacity for e in config.events)
    return path
