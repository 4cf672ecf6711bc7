"""The admin commands on a real database and real SMTP sink, driven through `mailbot.cli.main`."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import (
    JAN,
    db_rows,
    mail,
    register,
    run_cycle,
    server_config_file,
    statuses,
)
from servers import Dovecot, SmtpSink

from mailbot.cli import main
from mailbot.config import Config, load_config
from mailbot.store.db import reply_log_hash
from mailbot.store.schema import (
    anonymous_counts,
    audit_log,
    messages,
    outbox,
    outbox_bodies,
    participants,
    reply_log,
)


@pytest.fixture
def config_file(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> Path:
    return server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        **{
            "capacity = 30                          # assumed": "capacity = 2 #",
            # Commands act at the real "now": move the 2nd workshop into the future.
            "2018-02-22T": "2040-02-22T",
            "2018-02-09T": "2040-02-09T",
        },
    )


@pytest.fixture
def config(config_file: Path) -> Config:
    config = load_config(config_file)
    assert config.event_by_number(2).capacity == 2  # type: ignore[union-attr]
    return config


def run(capsys: pytest.CaptureFixture[str], config_file: Path, *args: str) -> tuple[int, str]:
    code = main([*args, "--config", str(config_file)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_phone_registration_cancel_and_move_up(
    capsys: pytest.CaptureFixture[str], config_file: Path, config: Config, smtp_sink: SmtpSink
) -> None:
    for name in ("Anna Arndt", "Bernd Brandt", "Clara Claussen", "Dora Dietz"):
        email = f"{name.split()[0].lower()}@example.org"
        code, out = run(
            capsys,
            config_file,
            "add",
            "--event",
            "2",
            "--email",
            email,
            "--name",
            name,
            "--lunch",
            "yes",
        )
        assert code == 0, out
    assert "waitlisted #2" in out and "1 mails sent" in out
    assert statuses(config) == {
        "anna@example.org": "confirmed",
        "bernd@example.org": "confirmed",
        "clara@example.org": "waitlisted",
        "dora@example.org": "waitlisted",
    }
    assert [r.rcpt_tos for r in smtp_sink.received] == [
        ["anna@example.org"],
        ["bernd@example.org"],
        ["clara@example.org"],
        ["dora@example.org"],
    ]

    code, out = run(capsys, config_file, "cancel", "anna@example.org", "werkstatt-2")
    assert code == 0 and "promoted clara@example.org" in out
    assert smtp_sink.received[-1].rcpt_tos == ["clara@example.org"]  # no mail to Anna by default
    assert statuses(config)["clara@example.org"] == "confirmed"

    code, out = run(capsys, config_file, "move-up", "dora@example.org", "2")
    assert code == 0 and statuses(config)["dora@example.org"] == "confirmed"
    code, out = run(capsys, config_file, "move-up", "dora@example.org", "2")
    assert code == 1 and "only waiting or late people move up" in out

    code, out = run(capsys, config_file, "list", "2")
    assert code == 0 and "Bernd Brandt" in out and "Anna" not in out and "3 people" in out
    code, out = run(capsys, config_file, "list", "2", "--all")
    assert "cancelled" in out and "4 people" in out
    code, out = run(capsys, config_file, "status")
    assert code == 0 and "3/2" in out and "mails in review: 0" in out

    code, out = run(capsys, config_file, "cancel", "nobody@example.org", "2")
    assert code == 1 and "no active registration" in out
    code, out = run(capsys, config_file, "list", "9")
    assert code == 1 and "unknown event '9'" in out


def test_refused_cancel_and_add_queue_no_mail(
    capsys: pytest.CaptureFixture[str], config_file: Path, config: Config, smtp_sink: SmtpSink
) -> None:
    """An admin command that ends in an error leaves nothing queued for the next poll to send."""
    code, out = run(capsys, config_file, "cancel", "nobdy@example.org", "2", "--notify")
    assert code == 1 and "no active registration" in out, out
    code, out = run(
        capsys, config_file, "add", "--event", "2", "--email", "x@example.org", "--name", " "
    )
    assert code == 1 and "not registered: missing name" in out, out
    assert db_rows(config, outbox) == [] and db_rows(config, messages) == []
    assert statuses(config) == {}
    run_cycle(config)
    assert smtp_sink.received == []


def test_late_waiting_list_place_moves_up_only_by_hand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """`late_policy = "waitlist"`: a late phone registration queues even with seats free, the
    next cycle leaves it there, `list` marks it, and `move-up` gives it the seat."""
    config_file = server_config_file(
        tmp_path,
        dovecot,
        smtp_sink,
        **{
            'late_policy = "reject"': 'late_policy = "waitlist"',
            "2018-02-22T": "2040-02-22T",  # the workshop is ahead ...
            "2018-02-09T": "2020-02-09T",  # ... but its deadline has passed
        },
    )
    config = load_config(config_file)
    code, out = run(
        capsys, config_file, "add", "--event", "2", "--email", "lena@example.org", "--name", "Lena"
    )
    assert code == 0 and "waitlisted #1" in out
    assert run_cycle(config).promoted == 0
    assert statuses(config) == {"lena@example.org": "waitlisted"}
    code, out = run(capsys, config_file, "list", "2", "--waitlist")
    assert code == 0 and "waitlisted (late)" in out and "1 person" in out
    code, out = run(capsys, config_file, "status")
    assert code == 0 and "0/30" in out

    code, out = run(capsys, config_file, "move-up", "lena@example.org", "2")
    assert code == 0 and statuses(config) == {"lena@example.org": "confirmed"}
    assert smtp_sink.received[-1].rcpt_tos == ["lena@example.org"]
    assert smtp_sink.message()["Subject"].startswith("Sie sind nachgerückt")


def test_export_csv_and_xlsx(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    run(
        capsys,
        config_file,
        "add",
        "--event",
        "2",
        "--email",
        "joerg@example.org",
        "--name",
        "Jörg Weißenfels",
        "--no-reply",
    )
    csv_path, xlsx_path = tmp_path / "list.csv", tmp_path / "list.xlsx"
    assert run(capsys, config_file, "export", "2", "--output", str(csv_path))[0] == 0
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbfName;")
    assert "Jörg Weißenfels" in csv_path.read_text(encoding="utf-8-sig")
    assert (
        run(capsys, config_file, "export", "2", "--format", "xlsx", "--output", str(xlsx_path))[0]
        == 0
    )
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx_path).active
    assert sheet["A2"].value == "Jörg Weißenfels" and sheet["D2"].value == "angemeldet"


def registration_without_a_name(dovecot: Dovecot, config: Config) -> None:
    """A registration from j.smith@example.net that names nobody: it waits in review, and
    he is asked for his name."""
    dovecot.append(
        mail(
            "I'd like to register for the workshop on 22 February.",
            sender="j.smith@example.net",
            subject="Registration",
        ),
        JAN,
    )
    run_cycle(config)


def test_resend_and_review(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    config: Config,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
) -> None:
    registration_without_a_name(dovecot, config)
    assert "name" in smtp_sink.message().get_body(("plain",)).get_content()
    code, out = run(capsys, config_file, "review")
    assert code == 0 and "j.smith@example.net" in out and "1 mails in review" in out
    (row,) = db_rows(config, messages)
    code, out = run(
        capsys,
        config_file,
        "review",
        str(row.id),
        "--name",
        "John Smith",
        "--email",
        "j.smith@example.net",
    )
    assert code == 0 and "confirmed" in out, out
    assert statuses(config) == {"j.smith@example.net": "confirmed"}
    assert "John Smith" in smtp_sink.message().get_body(("plain",)).get_content()
    code, out = run(capsys, config_file, "review")
    assert "0 mails in review" in out
    code, out = run(capsys, config_file, "review", str(row.id), "--dismiss")
    assert code == 1 and "not waiting in review" in out

    sent = len(smtp_sink.received)
    reply = db_rows(config, outbox)[0]
    code, out = run(capsys, config_file, "resend", reply.message_id)
    assert code == 0 and "queued again" in out
    assert len(smtp_sink.received) == sent + 1
    assert smtp_sink.message()["Message-ID"] == reply.message_id


def test_review_name_alone_and_refusal_of_what_is_still_missing(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    config: Config,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
) -> None:
    """`--name` alone corrects the parsed person; a correction that leaves the mail in review
    is refused: the mail stays open and nobody is mailed again."""
    registration_without_a_name(dovecot, config)
    (row,) = db_rows(config, messages)
    replies = len(db_rows(config, outbox))
    assert replies == 1  # the "what is your name?" reply

    for correction in (["--accept"], ["--organisation", "Stadt Dortmund"]):
        code, out = run(capsys, config_file, "review", str(row.id), *correction)
        assert code == 1 and "still missing: name" in out and "--name" in out, out
        assert len(db_rows(config, outbox)) == replies  # no second "what is your name?"
        (still,) = db_rows(config, messages)
        assert still.resolved_at is None and still.resolution is None
        assert statuses(config) == {}
    code, out = run(capsys, config_file, "review")
    assert "1 mails in review" in out

    code, out = run(capsys, config_file, "review", str(row.id), "--name", "John Smith")
    assert code == 0 and "j.smith@example.net: confirmed" in out, out
    assert statuses(config) == {"j.smith@example.net": "confirmed"}
    assert [r.purpose for r in db_rows(config, outbox)] == ["reply:missing_data", "reply:outcomes"]
    assert "John Smith" in smtp_sink.message().get_body(("plain",)).get_content()
    code, out = run(capsys, config_file, "review")
    assert "0 mails in review" in out


def test_review_name_alone_needs_one_parsed_address(
    capsys: pytest.CaptureFixture[str], config_file: Path, config: Config
) -> None:
    """Without --email, --name corrects the one parsed person; no address or two people: refused."""
    from mailbot.models import Intent, MailHeaders, ParsedMail, Participant
    from mailbot.registrar import MailPlace, Registrar
    from mailbot.store.db import Store

    store = Store(config.database_url)
    registrar = Registrar(config, store, lambda: JAN)
    rows = []
    for n, people in enumerate(
        (
            [],
            [Participant(email="a@example.org"), Participant(email="b@example.org")],
        )
    ):
        parsed = ParsedMail(
            intent=Intent.REGISTER,
            events=[2],
            participants=people,
            headers=MailHeaders(from_address="office@example.org", subject="Anmeldung"),
        )
        with store.transaction() as conn:
            rows.append(
                registrar.settle_mail(conn, parsed, JAN, MailPlace("INBOX", 1, n, f"k{n}"))[0]
            )
    store.close()
    replies = len(db_rows(config, outbox))

    code, out = run(capsys, config_file, "review", str(rows[0]), "--name", "Anna Arndt")
    assert code == 1 and "names no e-mail address; give --email" in out, out
    code, out = run(capsys, config_file, "review", str(rows[1]), "--name", "Anna Arndt")
    assert code == 1 and "names 2 people; give --email" in out, out
    assert len(db_rows(config, outbox)) == replies
    code, out = run(capsys, config_file, "review")
    assert "2 mails in review" in out

    code, out = run(
        capsys,
        config_file,
        "review",
        str(rows[0]),
        "--name",
        "Anna Arndt",
        "--email",
        "a@example.org",
    )
    assert code == 0 and "a@example.org: confirmed" in out, out


def test_import_mbox_keeps_order_and_skips_answered(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    config: Config,
    tmp_path: Path,
    smtp_sink: SmtpSink,
) -> None:
    from helpers import form

    box = mailbox.mbox(str(tmp_path / "export.mbox"))
    late = mail(
        form("Bernd Brandt", "bernd@example.org"),
        sender="Bernd Brandt <bernd@example.org>",
        date=JAN + timedelta(days=2),
    )
    early = mail(
        form("Anna Arndt", "anna@example.org"), sender="Anna Arndt <anna@example.org>", date=JAN
    )
    third = mail(
        form("Clara Claussen", "clara@example.org"),
        sender="Clara Claussen <clara@example.org>",
        date=JAN + timedelta(days=3),
    )
    import email as email_lib

    early_id = email_lib.message_from_bytes(early)["Message-ID"]
    answer = mail(
        "Liebe Frau Arndt, Sie sind angemeldet.",
        sender=config.organiser.address,
        subject="Re: Anmeldung",
        date=JAN + timedelta(hours=2),
        headers={"In-Reply-To": early_id},
    )
    for raw in (late, early, answer, third):  # stored out of order
        box.add(raw)
    box.flush()
    code, out = run(capsys, config_file, "import", str(tmp_path / "export.mbox"))
    assert code == 0, out
    assert "4 mails read: 3 handled" in out and "1 from our own addresses" in out
    assert "1 answered by hand before" in out
    # Arrival order, not file order: Anna and Bernd have the two seats.
    assert statuses(config) == {
        "anna@example.org": "confirmed",
        "bernd@example.org": "confirmed",
        "clara@example.org": "waitlisted",
    }
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == [
        "bernd@example.org",
        "clara@example.org",
    ]
    code, out = run(capsys, config_file, "import", str(tmp_path / "export.mbox"))
    assert "0 handled" in out and "3 already known" in out


def test_import_reads_the_mbox_from_line_in_local_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """The "From " line's time has no zone; Postfix and Thunderbird write local time, so it is
    read in [mailbot] timezone: 23:30 in Berlin on deadline day is on time, 00:30 is late."""
    from helpers import form

    config_file = server_config_file(tmp_path, dovecot, smtp_sink)  # the shipped 2018 dates
    config = load_config(config_file)
    deadline = config.event_by_number(2).deadline  # type: ignore[union-attr]
    assert deadline == datetime(2018, 2, 9, 23, 59, 59, tzinfo=timezone(timedelta(hours=1)))
    export = b""
    for stamp, name, address in (
        ("Fri Feb  9 23:30:00 2018", "Anna Arndt", "anna@example.org"),
        ("Sat Feb 10 00:30:00 2018", "Bernd Brandt", "bernd@example.org"),
    ):
        raw = mail(form(name, address), sender=f"{name} <{address}>")  # no Date: the line counts
        export += f"From {address} {stamp}\n".encode() + raw.replace(b"\r\n", b"\n") + b"\n"
    (tmp_path / "export.mbox").write_bytes(export)
    code, out = run(capsys, config_file, "import", str(tmp_path / "export.mbox"))
    assert code == 0, out
    arrivals = {r.sender: r.arrival for r in db_rows(config, messages)}
    assert arrivals["anna@example.org"] == datetime(2018, 2, 9, 22, 30, tzinfo=UTC)
    assert statuses(config)["anna@example.org"] == "confirmed"
    assert statuses(config).get("bernd@example.org") != "confirmed"


def test_forget_leaves_only_anonymous_counts(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    config: Config,
    dovecot: Dovecot,
) -> None:
    register(dovecot, "Anna Arndt", "anna@example.org", JAN)
    register(dovecot, "Bernd Brandt", "bernd@example.org", JAN + timedelta(hours=1))
    run_cycle(config)
    code, out = run(capsys, config_file, "forget", "anna@example.org", "--yes")
    assert code == 0 and "1 participants, 1 registrations, 1 mails, 1 replies" in out
    assert [p.email for p in db_rows(config, participants)] == ["bernd@example.org"]
    everything = " ".join(
        str(tuple(r))
        for t in (messages, outbox, outbox_bodies, audit_log)
        for r in db_rows(config, t)
    )
    assert "anna" not in everything.lower()
    assert [(c.event_id, c.status, c.count) for c in db_rows(config, anonymous_counts)] == [
        ("werkstatt-2", "confirmed", 1)
    ]
    assert "forget" in [a.action for a in db_rows(config, audit_log)]
    assert [r.address_hash for r in db_rows(config, reply_log)] == [
        reply_log_hash("bernd@example.org")
    ]


def test_retention_purges_ended_events(config: Config, dovecot: Dovecot) -> None:
    from datetime import datetime

    from mailbot.admin.privacy import purge_expired
    from mailbot.store.db import Store

    register(dovecot, "Anna Arndt", "anna@example.org", JAN)
    run_cycle(config)
    store = Store(config.database_url)
    end = config.event_by_number(2).end  # type: ignore[union-attr]
    soon = end + timedelta(days=config.privacy.retention_days - 1)
    first = purge_expired(config, store, soon)  # older than `soon` - retention_days: the reply
    assert first.registrations == 0 and first.replies == 1
    assert db_rows(config, outbox) == db_rows(config, outbox_bodies) == []  # with its bytes
    erased = purge_expired(config, store, end + timedelta(days=config.privacy.retention_days + 1))
    store.close()
    assert erased.registrations == 1 and erased.participants == 1
    assert db_rows(config, participants) == []
    assert all(m.sender is None for m in db_rows(config, messages))
    assert isinstance(soon, datetime)
