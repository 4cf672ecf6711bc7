"""`mailbot import`: registrations that arrived before mailbot, from an mbox file or a Maildir.

The organiser exports the inbox (and, ideally, the sent folder) and mailbot takes the mails in
arrival order, with the same rules as live mail. Mail the organiser already answered by hand
gets no second answer unless `--reply` asks for one; a mail is "answered" when the export holds
a mail from one of our addresses whose In-Reply-To or References names it.
"""

from __future__ import annotations

import email
import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email import policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TextIO

from mailbot.config import Config
from mailbot.reading import dedupe_key, parse_for
from mailbot.registrar import MailPlace, Registrar
from mailbot.store.db import Store


@dataclass
class ImportReport:
    total: int = 0
    handled: int = 0
    known: int = 0
    ours: int = 0
    silent: int = 0  # answered by hand before: recorded, not answered again
    by_state: dict[str, int] | None = None


@dataclass(frozen=True)
class _Mail:
    raw: bytes
    arrival: datetime
    index: int


def _arrival(message: mailbox.Message, raw: bytes, fallback: datetime, local: tzinfo) -> datetime:
    """mbox "From " line or Maildir delivery time first, then the Date header.

    The "From " line's time has no zone. RFC 4155 says it is UTC, but Postfix's local
    delivery and Thunderbird write the local time of the machine that stored the mail, so it
    is read in `local`, the configured `[mailbot] timezone` (the organiser's server's zone):
    read as UTC, a mail from 23:30 in Berlin on deadline day came out an hour later, late.
    A Maildir's delivery time is the file's mtime (what `mailbox.MaildirMessage.get_date`
    gives), a Unix timestamp: no zone to guess.
    """
    if isinstance(message, mailbox.mboxMessage):
        parts = message.get_from().split(None, 1)
        if len(parts) == 2:
            try:
                return datetime.strptime(parts[1].strip(), "%a %b %d %H:%M:%S %Y").replace(
                    tzinfo=local
                )
            except ValueError:
                pass
    if isinstance(message, mailbox.MaildirMessage) and message.get_date():
        return datetime.fromtimestamp(message.get_date(), UTC)
    header = email.message_from_bytes(raw, policy=policy.compat32).get("Date")
    if header:
        try:
            parsed = parsedate_to_datetime(str(header))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    return fallback


def read_mails(path: Path, fallback: datetime, local: tzinfo) -> list[_Mail]:
    """Every mail of an mbox file or a Maildir, oldest first (stable for equal times).

    `local`: the zone of the times in mbox "From " lines (see `_arrival`)."""
    if path.is_dir():
        box: mailbox.Mailbox = mailbox.Maildir(str(path), factory=None, create=False)
    elif path.is_file():
        box = mailbox.mbox(str(path), create=False)
    else:
        raise FileNotFoundError(f"{path}: no such mbox file or Maildir")
    mails = []
    for index, key in enumerate(box.iterkeys()):
        message = box.get_message(key)
        raw = box.get_bytes(key)
        mails.append(_Mail(raw, _arrival(message, raw, fallback, local), index))
    return sorted(mails, key=lambda m: (m.arrival, m.index))


def answered_ids(mails: list[_Mail], own: frozenset[str]) -> set[str]:
    """Message-IDs that one of our addresses replied to within the export."""
    found: set[str] = set()
    for mail in mails:
        header = email.message_from_bytes(mail.raw, policy=policy.compat32)
        sender = email.utils.parseaddr(str(header.get("From", "")))[1].lower()
        if sender not in own:
            continue
        for name in ("In-Reply-To", "References"):
            found.update(str(header.get(name, "")).split())
    return found


def import_mails(
    config: Config,
    store: Store,
    clock: Callable[[], datetime],
    path: Path,
    *,
    reply: bool = False,
    progress: TextIO | None = None,
) -> ImportReport:
    """`progress`: where the progress bar goes (the CLI passes the sys.stderr of its call;
    a default bound when this module is first imported would outlive a replaced stderr)."""
    mails = read_mails(path, clock(), config.tz)
    answered = answered_ids(mails, config.own_addresses)
    registrar = Registrar(config, store, clock)
    report = ImportReport(total=len(mails), by_state={})
    # One pseudo-folder per run keeps (folder, UIDVALIDITY, UID) unique across imports.
    folder = f"import:{clock().isoformat()}:{path.resolve()}"[:255]
    for done, mail in enumerate(_with_progress(mails, progress), 1):
        parsed = parse_for(config, mail.raw, mail.arrival)
        if (parsed.headers.from_address or "") in config.own_addresses:
            report.ours += 1
            continue
        key = dedupe_key(parsed, mail.raw)
        was_answered = (parsed.headers.message_id or "") in answered
        with store.transaction() as conn:
            if store.message_by_key(conn, key) is not None:
                report.known += 1
                continue
            _, decision = registrar.settle_mail(
                conn,
                parsed,
                mail.arrival,
                MailPlace(folder, 0, done, key),
                reply=reply or not was_answered,
                raw=mail.raw,
            )
        report.handled += 1
        report.silent += int(was_answered and not reply)
        state = decision.route.value
        report.by_state[state] = report.by_state.get(state, 0) + 1  # type: ignore[index]
    return report


def _with_progress(mails: list[_Mail], out: TextIO | None) -> Iterator[_Mail]:
    total = len(mails)
    for number, mail in enumerate(mails, 1):
        if out is not None and (number == total or number % 10 == 0 or number == 1):
            filled = int(30 * number / max(total, 1))
            out.write(f"\rimporting [{'#' * filled}{'.' * (30 - filled)}] {number}/{total}")
            if number == total:
                out.write("\n")
            out.flush()
        yield mail
