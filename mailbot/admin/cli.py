"""The organiser's and admin's commands: status, lists, exports, corrections and the digest.

Each command opens the store, calls one function of `mailbot.admin` or `mailbot.digest`, prints a
table or one line, and exits 0 on success, 1 when the request cannot be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

from mailbot.admin.errors import AdminError
from mailbot.admin.table import table
from mailbot.config import Config, EventSettings

EXIT_OK, EXIT_FAILURE = 0, 1


def _store(config: Config):  # type: ignore[no-untyped-def]
    from mailbot.store.db import Store

    return Store(config.database_url)


def _now() -> datetime:
    from mailbot.clock import utc_now

    return utc_now()


def _local(config: Config, when: datetime | None) -> str:
    return when.astimezone(config.tz).strftime("%d.%m.%Y %H:%M") if when else "never"


def _send_now(config: Config, store) -> str:  # type: ignore[no-untyped-def]
    """Hand queued replies to SMTP at once, so an admin sees the result of the command."""
    from mailbot.send.smtp import send_outbox

    report = asyncio.run(
        send_outbox(
            store,
            config.smtp,
            config.organiser.address,
            _now,
            hourly_cap=config.mailbot.max_replies_per_hour,
        )
    )
    text = f"{report.sent} mails sent"
    if report.retried or report.failed:
        text += f", {report.retried} to retry, {report.failed} failed (see `mailbot status`)"
    return text


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin.queries import health
    from mailbot.digest.collect import collect

    store = _store(config)
    with store.transaction() as conn:
        data = collect(conn, config, _now())
        state = health(conn)
    store.close()
    rows = [
        (
            e.event.id,
            e.event.title[:40],
            f"{e.confirmed}/{e.event.capacity}",
            e.seats_left,
            e.waitlisted,
            e.late,
            e.cancelled,
            "passed" if e.days_to_deadline is None else f"{e.days_to_deadline} days",
        )
        for e in data.events
    ]
    print(
        table(
            ("event", "title", "confirmed", "free", "waiting", "late", "cancelled", "deadline"),
            rows,
        )
    )
    print()
    print(f"last successful poll: {_local(config, state.last_poll_at)}")
    print(
        f"replies waiting to be sent: {state.outbox_backlog}, failed for good: {state.failed_replies}"
    )
    print(f"mails in review: {state.review_queue}, mails failing (retried): {state.failing_mails}")
    for name, (value, at) in sorted(state.notes.items()):
        if value:
            print(f"{name.replace('alert:', 'ALERT ')}: {value} ({_local(config, at)})")
    return EXIT_OK


def _shown_status(status: str, arrival: datetime, event: EventSettings) -> str:
    """A late waiting-list place is marked: it never moves up by itself, the organiser
    decides on it (`mailbot move-up`)."""
    from mailbot.decide.rules import Status, is_late

    if status == Status.WAITLISTED.value and is_late(arrival, event):
        return f"{status} (late)"
    return status


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin.actions import find_event
    from mailbot.digest.collect import people

    event = find_event(config, args.event)
    store = _store(config)
    with store.transaction() as conn:
        rows = people(conn, event.id)
    store.close()
    wanted = {"all": None, "waitlist": {"waitlisted"}}.get(args.show, {"confirmed"})
    if wanted is not None:
        rows = [r for r in rows if r.status in wanted]
    print(
        table(
            ("#", "name", "e-mail", "organisation", "status", "lunch", "role", "arrival"),
            [
                (
                    n,
                    r.name,
                    r.email,
                    r.organisation,
                    _shown_status(r.status, r.arrival, event),
                    r.lunch,
                    r.role,
                    _local(config, r.arrival),
                )
                for n, r in enumerate(rows, 1)
            ],
        )
    )
    print(f"\n{len(rows)} {'people' if len(rows) != 1 else 'person'} ({event.title})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin.actions import find_event
    from mailbot.admin.export import export_event

    event = find_event(config, args.event)
    store = _store(config)
    with store.transaction() as conn:
        path = export_event(conn, config, event, args.format, args.output)
    store.close()
    print(f"wrote {path}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin import actions
    from mailbot.admin.actions import PersonInput, find_event

    events = [find_event(config, e) for e in args.event]
    store = _store(config)
    decision = actions.add(
        config,
        store,
        _now,
        PersonInput(args.email, args.name, args.organisation),
        events,
        lunch={"yes": True, "no": False}.get(args.lunch or ""),
        role=args.role,
        notes=args.notes,
        language=args.language,
        reply=not args.no_reply,
    )
    print(decision.summary)  # a missing field was refused in `actions.add`: nothing queued
    if not args.no_reply:
        print(_send_now(config, store))
    store.close()
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin import actions
    from mailbot.admin.actions import find_event

    store = _store(config)
    decision = actions.cancel(
        config, store, _now, args.email, find_event(config, args.event), notify=args.notify
    )
    print(decision.summary)
    print(_send_now(config, store))
    store.close()
    return EXIT_OK


def cmd_move_up(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin import actions
    from mailbot.admin.actions import find_event

    store = _store(config)
    event = find_event(config, args.event)
    actions.move_up(config, store, _now, args.email, event)
    print(f"{args.email} is now confirmed for {event.id}")
    print(_send_now(config, store))
    store.close()
    return EXIT_OK


def cmd_resend(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin import actions

    store = _store(config)
    print(actions.resend(store, args.message, _now()))
    print(_send_now(config, store))
    store.close()
    return EXIT_OK


def cmd_review(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin import actions
    from mailbot.admin.actions import PersonCorrection, find_event
    from mailbot.admin.queries import message_row, review_queue

    store = _store(config)
    try:
        if args.id is None:
            with store.transaction() as conn:
                rows = review_queue(conn)
            print(
                table(
                    ("id", "arrival", "from", "subject", "reason"),
                    [
                        (
                            r.id,
                            _local(config, r.arrival),
                            r.sender,
                            (r.subject or "")[:40],
                            r.reason,
                        )
                        for r in rows
                    ],
                )
            )
            print(
                f"\n{len(rows)} mails in review; `mailbot review ID --accept` applies the parsed "
                "fields, `--dismiss` closes it, `--email/--name/--organisation/--event/--intent` "
                "correct them"
            )
            return EXIT_OK
        corrects_person = bool(args.email or args.name or args.organisation)
        if not (args.accept or args.dismiss or corrects_person or args.event or args.intent):
            with store.transaction() as conn:
                row = message_row(conn, args.id)
            if row is None:
                raise AdminError(f"no mail {args.id}")
            print(f"mail {row.id} from {row.sender}, {_local(config, row.arrival)}: {row.subject}")
            print(f"state {row.state}: {row.reason}")
            print(row.parsed_json or "(not parsed)")
            return EXIT_OK
        # Each of --email/--name/--organisation corrects alone; the others keep the parsed value.
        person = (
            PersonCorrection(args.email, args.name, args.organisation) if corrects_person else None
        )
        events = [find_event(config, e) for e in args.event] if args.event else None
        decision = actions.resolve_review(
            config,
            store,
            _now,
            args.id,
            dismiss=args.dismiss,
            intent=args.intent,
            person=person,
            events=events,
            reply=not args.no_reply,
        )
        print("dismissed" if decision is None else decision.summary)
        if decision is not None:
            print(_send_now(config, store))
        return EXIT_OK
    finally:
        store.close()


def cmd_digest(args: argparse.Namespace, config: Config) -> int:
    from mailbot.digest import digest_if_due, render

    store = _store(config)
    try:
        if args.send:
            result = digest_if_due(config, store, _now(), force=True)
            print(f"digest for {result.day} {result.status}; {_send_now(config, store)}")
            return EXIT_OK
        with store.transaction() as conn:
            _, raw = render(config, conn, _now())
        import email
        from email import policy

        message = email.message_from_bytes(raw, policy=policy.default)
        print(f"Subject: {message['Subject']}\nTo: {message['To']}\n")
        print(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        if args.html:
            Path(args.html).write_text(message.get_body(("html",)).get_content(), encoding="utf-8")  # type: ignore[union-attr]
            print(f"HTML written to {args.html}")
        return EXIT_OK
    finally:
        store.close()


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin.importer import import_mails

    store = _store(config)
    try:
        report = import_mails(config, store, _now, args.path, reply=args.reply, progress=sys.stderr)
    except (FileNotFoundError, OSError) as exc:
        raise AdminError(str(exc)) from None
    states = ", ".join(f"{n} {s}" for s, n in sorted((report.by_state or {}).items()))
    print(
        f"{report.total} mails read: {report.handled} handled ({states or 'none'}), "
        f"{report.known} already known, {report.ours} from our own addresses; "
        f"{report.silent} answered by hand before, so not answered again"
    )
    print(_send_now(config, store))
    store.close()
    return EXIT_OK


def cmd_forget(args: argparse.Namespace, config: Config) -> int:
    from mailbot.admin.privacy import forget

    if not args.yes:
        answer = input(f"Erase everything mailbot stores about {args.email}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes", "j", "ja"):
            print("nothing erased")
            return EXIT_FAILURE
    store = _store(config)
    erased = forget(store, args.email, _now())
    store.close()
    print(f"erased {erased}; the audit log records that it was done (without the address)")
    print("Mail in the organiser's IMAP folders is not touched: delete it there as well.")
    return EXIT_OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    def add(name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        parser = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. Example: {example}",
        )
        parser.set_defaults(func=func, needs_config=True)
        return parser

    add(
        "status",
        cmd_status,
        "per event counts, last poll, outbox and review queue",
        "mailbot status",
    )

    p = add("list", cmd_list, "list the people of one event", "mailbot list 2 --waitlist")
    p.add_argument("event", help="event id or number")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--waitlist",
        dest="show",
        action="store_const",
        const="waitlist",
        help="the waiting list, in order",
    )
    group.add_argument(
        "--all", dest="show", action="store_const", const="all", help="everyone, with every status"
    )

    p = add(
        "export",
        cmd_export,
        "write the participant list as CSV or Excel",
        "mailbot export 2 --format xlsx",
    )
    p.add_argument("event", help="event id or number")
    p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    p.add_argument("--output", type=Path, help="file to write (default: teilnehmende-EVENT.FORMAT)")

    p = add(
        "add",
        cmd_add,
        "register someone by hand (phone, in person) with the same rules and reply",
        "mailbot add --event 2 --email erika@example.org --name 'Erika Mustermann'",
    )
    p.add_argument(
        "--event", action="append", required=True, help="event id or number (repeatable)"
    )
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--organisation")
    p.add_argument("--lunch", choices=("yes", "no"))
    p.add_argument("--role", choices=("speaker", "participant"))
    p.add_argument("--notes")
    p.add_argument("--language", choices=("de", "en"), default="de")
    p.add_argument("--no-reply", action="store_true", help="register without mailing the person")

    p = add(
        "cancel",
        cmd_cancel,
        "cancel a registration; the first person waiting moves up",
        "mailbot cancel erika@example.org 2",
    )
    p.add_argument("email")
    p.add_argument("event", help="event id or number")
    p.add_argument("--notify", action="store_true", help="also mail the person a cancellation")

    p = add(
        "move-up",
        cmd_move_up,
        "promote someone from the waiting list by hand",
        "mailbot move-up erika@example.org 2",
    )
    p.add_argument("email")
    p.add_argument("event", help="event id or number")

    p = add(
        "resend",
        cmd_resend,
        "send a reply again (by outbox number or Message-ID)",
        "mailbot resend 17",
    )
    p.add_argument("message")

    p = add(
        "review",
        cmd_review,
        "list mails waiting for a human, show one, or resolve it",
        "mailbot review 12 --accept",
    )
    p.add_argument("id", type=int, nargs="?")
    p.add_argument("--accept", action="store_true", help="apply the parsed fields as they are")
    p.add_argument("--dismiss", action="store_true", help="close without any action or reply")
    p.add_argument("--intent", choices=("register", "cancel", "update"))
    p.add_argument("--email", help="correct the address (the parsed name stays unless --name)")
    p.add_argument("--name", help="correct the name (the parsed address stays unless --email)")
    p.add_argument("--organisation", help="correct the organisation")
    p.add_argument("--event", action="append", help="event id or number (repeatable)")
    p.add_argument("--no-reply", action="store_true")

    p = add(
        "import",
        cmd_import,
        "take in registrations from an mbox file or a Maildir export",
        "mailbot import ~/export/anmeldungen.mbox",
    )
    p.add_argument("path", type=Path)
    p.add_argument(
        "--reply", action="store_true", help="also answer mail the organiser already answered"
    )

    p = add(
        "forget",
        cmd_forget,
        "erase a person's data (GDPR), leaving anonymous counts",
        "mailbot forget erika@example.org --yes",
    )
    p.add_argument("email")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add(
        "digest",
        cmd_digest,
        "show the organisers' daily digest, or send it now",
        "mailbot digest --preview",
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--preview", action="store_true", help="print it (nothing is sent)")
    group.add_argument("--send", action="store_true", help="send it now")
    p.add_argument("--html", metavar="FILE", help="with --preview: also write the HTML part")
