"""Crash consistency (issue 6.1): `mailbot run` killed with SIGKILL at random moments, restarted.

Why this file exists: the guarantees in the README ("never lose a mail", "never answer twice",
one transaction per mail, the MOVE only after the commit, a reply marked sent only after the
server accepted it) are claims about what survives a crash at *any* instruction.  Unit tests
cannot show that; killing the real process can.  A few hundred varied registration mails go
into a real Dovecot, `python -m mailbot run` works on them and is killed with SIGKILL at
seeded random moments (at least 20 times), then restarted, until everything is handled.  The
end state is then compared with an independent model of the rules (first come, first served,
waiting list, promotions), and every mail, seat and reply is accounted for.  The only
duplicates allowed are the documented at-least-once case: a reply the SMTP server accepted just
before the kill, before our commit, sent again with the same Message-ID, at most once per kill.

Set MAILBOT_CRASH_SEED to replay a run; the seed is printed either way.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from helpers import ORGANISER, server_config_file
from servers import Dovecot, SmtpSink

pytestmark = pytest.mark.servers

MAILS = 300
KILLS = 24
CAPACITY = {"werkstatt-2": 40, "werkstatt-3": 12}
PROCESSED, REVIEW = "INBOX/Processed", "INBOX/Review"

FIRST = [
    "Anna",
    "Bernd",
    "Clara",
    "Dieter",
    "Emma",
    "Felix",
    "Greta",
    "Hannes",
    "Ida",
    "Jonas",
    "Karla",
    "Lukas",
    "Marie",
    "Niklas",
    "Olga",
    "Paul",
    "Queenie",
    "Rolf",
    "Sophie",
    "Tim",
    "Ulla",
    "Viktor",
    "Wiebke",
    "Yusuf",
    "Zoe",
    "Ömer",
    "Jörg",
    "Søren",
    "Chloé",
    "Łukasz",
]
LAST = [
    "Arndt",
    "Brandt",
    "Claussen",
    "Dietz",
    "Ebert",
    "Fink",
    "Graf",
    "Horn",
    "Iske",
    "Jung",
    "Kaiser",
    "Lorenz",
    "Maier",
    "Nowak",
    "Otto",
    "Pohl",
    "Quast",
    "Roth",
    "Schulz",
    "Thiel",
    "Ufer",
    "Vogt",
    "Weber",
    "Yilmaz",
    "Zander",
    "Müller",
    "Groß",
    "Brückner",
]
ORGS = ("Stadt Dortmund", "TU Dortmund", "Quartiersbüro Nord", "Wuppertal Institut", "")


@dataclass(frozen=True)
class Planned:
    """One generated mail and what it is meant to be."""

    kind: str  # register, cancel, question, autoreply, newsletter
    message_id: str
    raw: bytes
    arrival: datetime
    email: str | None = None
    event: str | None = None
    english: bool = False


@dataclass
class Model:
    """An independent re-statement of the rules: per event, status by address and the queue."""

    status: dict[str, dict[str, str]] = field(
        default_factory=lambda: {event: {} for event in CAPACITY}
    )
    waiting: dict[str, list[str]] = field(default_factory=lambda: {event: [] for event in CAPACITY})
    promotions: int = 0

    def active(self, event: str, email: str) -> bool:
        return self.status[event].get(email) in ("confirmed", "waitlisted")

    def register(self, event: str, email: str) -> None:
        if self.active(event, email):
            return  # "already registered": no second seat
        confirmed = sum(1 for s in self.status[event].values() if s == "confirmed")
        if confirmed < CAPACITY[event] and not self.waiting[event]:
            self.status[event][email] = "confirmed"
        else:
            self.status[event][email] = "waitlisted"
            self.waiting[event].append(email)

    def cancel(self, event: str, email: str) -> None:
        was = self.status[event][email]
        self.status[event][email] = "cancelled"
        if was == "waitlisted":
            self.waiting[event].remove(email)
            return
        if self.waiting[event]:
            promoted = self.waiting[event].pop(0)
            self.status[event][promoted] = "confirmed"
            self.promotions += 1


def _ascii(text: str) -> str:
    """An address-safe form of a name: "Łukasz Groß" -> "lukasz.gross"."""
    text = text.translate(str.maketrans({"ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O"}))
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().replace(" ", ".")


def _message(
    sender: str, subject: str, body: str, when: datetime, headers: dict[str, str] | None = None
) -> tuple[str, bytes]:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ORGANISER
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message_id = make_msgid(domain="crash.example.org")
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message_id, message.as_bytes()


def _registration(name: str, email: str, org: str, number: int, english: bool) -> tuple[str, str]:
    if english:
        subject = f"Registration for workshop {number}"
        body = (
            f"Dear organisers,\n\nI would like to register for the {number}nd workshop.\n\n"
            f"Name: {name}\nOrganisation: {org}\nE-mail: {email}\nLunch: no\n\nBest regards\n{name}\n"
        ).replace(" 3nd ", " 3rd ")
        return subject, body
    subject = f"Anmeldung {number}. Werkstatt"
    body = (
        f"Sehr geehrte Damen und Herren,\n\nhiermit melde ich mich verbindlich zur {number}. "
        f"Werkstatt an.\n\nName: {name}\nOrganisation: {org}\nE-Mail: {email}\n"
        f"Mittagsimbiss: ja\n\nMit freundlichen Grüßen\n{name}\n"
    )
    return subject, body


def plan_mails(rng: random.Random, start: datetime) -> list[Planned]:
    """MAILS mails in arrival order: registrations (more than the seats), duplicates,
    cancellations of confirmed and waiting people, questions, auto-replies, newsletters."""
    people = [(f, la) for f in FIRST for la in LAST]
    rng.shuffle(people)
    registered: dict[str, list[tuple[str, str]]] = {event: [] for event in CAPACITY}
    cancelled: set[tuple[str, str]] = set()
    planned: list[Planned] = []
    kinds = ["register"] * 62 + ["duplicate"] * 10 + ["cancel"] * 14 + ["question"] * 4
    kinds += ["autoreply"] * 5 + ["newsletter"] * 5
    for i in range(MAILS):
        when = start + timedelta(minutes=7 * i, seconds=rng.randrange(60))
        kind = rng.choice(kinds) if i >= 10 else "register"
        event = "werkstatt-3" if rng.random() < 0.25 else "werkstatt-2"
        number = int(event[-1])
        active = [p for p in registered[event] if (event, p[1]) not in cancelled]
        if kind in ("duplicate", "cancel") and not active:
            kind = "register"
        english = rng.random() < 0.3
        if kind == "register":
            first, last = people.pop()
            name = f"{first} {last}"
            email = f"{_ascii(name)}.{i}@example.org"
            subject, body = _registration(name, email, rng.choice(ORGS), number, english)
            mid, raw = _message(f"{name} <{email}>", subject, body, when)
            registered[event].append((name, email))
        elif kind == "duplicate":
            name, email = rng.choice(active)
            subject, body = _registration(name, email, rng.choice(ORGS), number, english)
            mid, raw = _message(f"{name} <{email}>", subject, body, when)
            kind = "register"
        elif kind == "cancel":
            name, email = rng.choice(active)
            cancelled.add((event, email))
            body = (
                f"Hiermit melde ich mich von der {number}. Werkstatt ab, leider bin ich "
                f"verhindert.\n\n{name}\n"
            )
            mid, raw = _message(f"{name} <{email}>", "Abmeldung", body, when)
            english = False
        elif kind == "question":
            first, last = people.pop()
            email = f"{_ascii(first + ' ' + last)}.q{i}@example.org"
            body = (
                f"Guten Tag, gibt es in der Nähe des ILS einen Parkplatz?\n\nGruß\n{first} {last}\n"
            )
            mid, raw = _message(f"{first} {last} <{email}>", "Frage zur Werkstatt", body, when)
            event, english = None, False
        elif kind == "autoreply":
            email = f"abwesend{i}@example.net"
            mid, raw = _message(
                f"Abwesend <{email}>",
                "Automatische Antwort: Ihre Nachricht",
                "Ich bin bis zum 20. des Monats nicht im Büro.",
                when,
                {"Auto-Submitted": "auto-replied"},
            )
            event, english = None, False
        else:
            email = "news@garten.example.net"
            mid, raw = _message(
                f"Gartenfreunde <{email}>",
                f"Newsletter Nr. {i}",
                "Zehn Tipps für den Garten.",
                when,
                {"List-Id": "<news.garten.example.net>", "Precedence": "bulk"},
            )
            event, english = None, False
        planned.append(Planned(kind, mid, raw, when, email, event, english))
    return planned


def expected_model(planned: list[Planned]) -> Model:
    model = Model()
    for mail in planned:
        if mail.kind == "register":
            model.register(mail.event, mail.email)  # type: ignore[arg-type]
        elif mail.kind == "cancel":
            model.cancel(mail.event, mail.email)  # type: ignore[arg-type]
    return model


# --------------------------------------------------------------------------------------------


class Bot:
    """`python -m mailbot run` as a child process, its output appended to one log file."""

    def __init__(self, config_file: Path, log_file: Path) -> None:
        self.config_file = config_file
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "run", "--config", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise

    def output(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def this_run(self) -> str:
        """The output of the current (or last) run only."""
        with self.log_file.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode("utf-8", "replace")

    def steps(self) -> int:
        """Units of work this run has logged: mails settled and replies sent."""
        run = self.this_run()
        return run.count(" -> ") + run.count(" INFO sent <")

    def wait_for_steps(self, steps: int, timeout: float = 20.0) -> None:
        """Block until this run did *steps* units of work, or finished its cycle, or timed out."""
        self.wait_for("mailbot running")
        deadline = time.monotonic() + timeout
        while self.steps() < steps and "cycle: " not in self.this_run():
            assert self.alive(), f"mailbot exited on its own:\n{self.output()[-3000:]}"
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Block until this run has written *text* (the worker logs as it goes)."""
        deadline = time.monotonic() + timeout
        while text not in self.this_run():
            assert self.alive(), f"mailbot exited on its own:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.this_run()[-3000:]}"
            time.sleep(0.01)


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """A read-only look at the database while the worker may be writing (WAL: no blocking)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def settled(db: Path, total: int) -> bool:
    """Every mail has a final, moved outcome and the outbox is empty."""
    if not db.exists():
        return False
    try:
        (count, unfinished) = query(
            db,
            "SELECT count(*), sum(CASE WHEN state = 'failed' OR (state IN ('done', 'review') "
            "AND NOT moved) THEN 1 ELSE 0 END) FROM messages",
        )[0]
        (backlog,) = query(
            db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
        )[0]
    except sqlite3.OperationalError:  # the schema is not created yet
        return False
    return count == total and not unfinished and backlog == 0


def last_poll(db: Path) -> object:
    """When the worker last finished a poll (mailbox_state), to see a new cycle complete."""
    try:
        return query(db, "SELECT max(last_poll_at) FROM mailbox_state")[0][0]
    except sqlite3.OperationalError:
        return None


def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    seed = int(os.environ.get("MAILBOT_CRASH_SEED", "20180222"))
    rng = random.Random(seed)
    print(f"\ncrash test seed: {seed} (MAILBOT_CRASH_SEED={seed} replays it)")
    began = time.monotonic()

    db = tmp_path / "crash.sqlite3"
    config_file = server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        database="crash.sqlite3",
        **{
            "poll_seconds = 60": "poll_seconds = 5",
            "batch_size = 50": "batch_size = 20",
            # ~300 replies in a minute is this test's load, not a mail loop.
            "max_replies_per_hour = 5000": "max_replies_per_hour = 100000",
            # The events move to the far future: the arrival times below are real (INTERNALDATE
            # near now), all before the deadlines, and the retention purge leaves them alone.
            "2017-": "2097-",
            "2018-": "2098-",
        },
    )
    config_file.write_text(_set_capacity(config_file.read_text("utf-8")), "utf-8")

    planned = plan_mails(rng, datetime.now(UTC) - timedelta(days=30))
    model = expected_model(planned)
    bot = Bot(config_file, tmp_path / "mailbot.log")
    # A first share of the mail is waiting at the first start; the rest arrives between the
    # restarts, so every run of the worker finds work and the kills fall into it.  Mail
    # reaches the server in arrival order (INTERNALDATE order = UID order), as in life.
    first = 60
    step = -(-(MAILS - first) // KILLS)
    chunks = [planned[:first]] + [
        planned[start : start + step] for start in range(first, MAILS, step)
    ]
    kills, mid_cycle, progress, kill_times = 0, 0, [], []
    for chunk in chunks:
        dovecot.append_many((m.raw, m.arrival) for m in chunk)
        bot.start()
        # The kill falls at a random point of the work: after a random number of steps
        # (mails settled, replies sent) of this run, plus a random fraction of a step, so it
        # hits IMAP login, FETCH, a mail's transaction, the MOVE or SMTP alike.  Counting
        # steps instead of seconds makes a slow machine (CI) kill at the same points.
        steps = rng.randint(0, 30)
        bot.wait_for_steps(steps)
        time.sleep(rng.uniform(0.0, 0.25))
        assert bot.alive(), f"mailbot exited on its own:\n{bot.output()[-3000:]}"
        bot.kill()
        kill_times.append(time.monotonic())
        kills += 1
        done = bot.steps()
        mid_cycle += "cycle: " not in bot.this_run()
        progress.append(done)

    # The last run: no more kills, until every mail is settled and every reply sent.  The
    # last killed run may have finished everything already; this one must still come up and
    # complete a cycle of its own (it finds nothing to do twice) before it is stopped.
    polled_before = last_poll(db)
    bot.start()
    bot.wait_for("mailbot running")
    deadline = time.monotonic() + 90
    while (not settled(db, MAILS) or last_poll(db) == polled_before) and (
        time.monotonic() < deadline
    ):
        assert bot.alive(), f"mailbot exited on its own:\n{bot.output()[-3000:]}"
        time.sleep(0.25)
    time.sleep(0.5)  # a reply accepted just now is recorded by the sink
    code = bot.stop()
    last_steps = bot.steps()
    output = bot.output()
    assert settled(db, MAILS), f"not settled after the last run:\n{output[-4000:]}"
    assert code == 0, f"exit code {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[output.index("Traceback") - 2000 :][:5000]

    check_mails(db, dovecot, planned)
    check_seats(db, model)
    deliveries, duplicates = check_replies(db, smtp_sink, planned, model, kill_times)
    check_sent_once(output)
    elapsed = time.monotonic() - began
    print(
        f"crash test: {kills} SIGKILLs survived ({mid_cycle} in the middle of a cycle, after "
        f"{min(progress)}-{max(progress)} steps; the killed runs did {sum(progress)} steps, "
        f"the last {last_steps}), {bot.starts} starts, {MAILS} mails checked, "
        f"{len(set(smtp_sink.message_ids()))} replies, {deliveries} SMTP deliveries, "
        f"{duplicates} duplicates (same Message-ID), {model.promotions} promotions, "
        f"{elapsed:.0f} s"
    )
    assert kills >= 20


def _set_capacity(text: str) -> str:
    """werkstatt-2 gets CAPACITY["werkstatt-2"] seats, werkstatt-3 CAPACITY["werkstatt-3"]."""
    blocks = text.split("[[events]]")
    for i, block in enumerate(blocks):
        for event, seats in CAPACITY.items():
            if f'id = "{event}"' in block:
                lines = [
                    f"capacity = {seats}" if line.startswith("capacity =") else line
                    for line in block.splitlines()
                ]
                blocks[i] = "\n".join(lines) + "\n"
    return "[[events]]".join(blocks)


def check_mails(db: Path, dovecot: Dovecot, planned: list[Planned]) -> None:
    """Every mail has exactly one row and is in exactly one folder, the one its state names."""
    rows = query(db, "SELECT message_id, state, moved, reason FROM messages")
    per_id = Counter(row[0] for row in rows)
    assert len(rows) == MAILS
    assert all(per_id[m.message_id] == 1 for m in planned), [
        (mid, n) for mid, n in per_id.items() if n != 1
    ]
    state = {row[0]: row[1] for row in rows}
    assert all(row[3] for row in rows), "every mail has a reason"
    where = {
        "INBOX": dovecot.message_ids("INBOX"),
        PROCESSED: dovecot.message_ids(PROCESSED),
        REVIEW: dovecot.message_ids(REVIEW),
    }
    seen = Counter(mid for ids in where.values() for mid in ids.values())
    assert all(seen[m.message_id] == 1 for m in planned), [
        (m.message_id, seen[m.message_id]) for m in planned if seen[m.message_id] != 1
    ]
    folder_of_state = {"done": PROCESSED, "review": REVIEW, "ignored": "INBOX"}
    for folder, ids in where.items():
        for mid in ids.values():
            assert folder_of_state[state[mid]] == folder, (mid, state[mid], folder)
    expected_state = {
        "register": "done",
        "cancel": "done",
        "autoreply": "done",
        "question": "review",
        "newsletter": "ignored",
    }
    wrong = [(m.kind, m.message_id, state[m.message_id]) for m in planned]
    wrong = [w for w in wrong if expected_state[w[0]] != w[2]]
    assert not wrong, wrong


def check_seats(db: Path, model: Model) -> None:
    """The registrations are exactly the model's: no seat given twice, the queue kept."""
    rows = query(
        db,
        "SELECT r.event_id, p.email, r.status FROM registrations r "
        "JOIN participants p ON p.id = r.participant_id",
    )
    pairs = Counter((event, email) for event, email, _ in rows)
    assert max(pairs.values()) == 1, "one registration per address and event"
    actual = {event: {} for event in CAPACITY}  # type: dict[str, dict[str, str]]
    for event, email, status in rows:
        actual[str(event)][str(email)] = str(status)
    for event, seats in CAPACITY.items():
        confirmed = sum(1 for s in actual[event].values() if s == "confirmed")
        assert confirmed <= seats, f"{event}: {confirmed} confirmed of {seats} seats"
        assert actual[event] == model.status[event], event


def check_replies(
    db: Path, sink: SmtpSink, planned: list[Planned], model: Model, kill_times: list[float]
) -> tuple[int, int]:
    """Every reply owed is queued once and sent; the only repeats are same-Message-ID resends."""
    outbox = query(
        db, "SELECT key, purpose, message_id, recipients, sent_at, failed_at FROM outbox"
    )
    assert all(row[4] is not None and row[5] is None for row in outbox), "every reply sent"
    row_of = dict(query(db, "SELECT message_id, id FROM messages"))
    replies = Counter(str(row[0]) for row in outbox if str(row[0]).startswith("reply:"))
    for mail in planned:
        owed = 1 if mail.kind in ("register", "cancel", "question") else 0
        assert replies[f"reply:{row_of[mail.message_id]}"] == owed, (mail.kind, mail.message_id)
    purposes = Counter(str(row[1]) for row in outbox)
    assert purposes["promotion"] == model.promotions
    assert purposes["forward"] == sum(1 for m in planned if m.kind == "question")
    # Nobody who only wrote an auto-reply or a newsletter ever got mail from us.
    silent = {m.email for m in planned if m.kind in ("autoreply", "newsletter")}
    assert not silent & {r for item in sink.received for r in item.rcpt_tos}

    queued = {str(row[2]): json.loads(str(row[3])) for row in outbox}
    delivered = Counter(sink.message_ids())
    assert set(delivered) == set(queued), "the sink got exactly the queued replies"
    for item in sink.received:
        assert item.rcpt_tos == queued[str(item.message_id)]
    copies = {mid: [i.data for i in sink.received if i.message_id == mid] for mid in delivered}
    assert all(len(set(c)) == 1 for c in copies.values()), "a resend is the same bytes"
    duplicates = sum(n - 1 for n in delivered.values())
    assert duplicates <= len(kill_times), f"{duplicates} duplicates for {len(kill_times)} kills"
    # Each repeat is explained by its own kill: one fell between the two copies, and no kill
    # explains two repeats (one SMTP connection, one reply in flight at a time).
    used: list[int] = []
    for mid, count in delivered.items():
        if count == 1:
            continue
        times = sorted(i.at for i in sink.received if i.message_id == mid)
        for earlier, later in itertools.pairwise(times):
            kill = next((k for k, t in enumerate(kill_times) if t > earlier), None)
            assert kill is not None and kill_times[kill] < later, f"{mid} sent twice, no kill"
            used.append(kill)
    assert len(used) == len(set(used)), "a single kill explains at most one repeat"
    return sum(delivered.values()), duplicates


def check_sent_once(output: str) -> None:
    """The worker logs "sent <Message-ID>" after the commit: never twice for one reply."""
    lines = Counter(re.findall(r" INFO sent (<[^>]+>)", output))
    twice = [mid for mid, n in lines.items() if n > 1]
    assert not twice, f"marked sent more than once: {twice}"
