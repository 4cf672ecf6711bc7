"""Render the digest as a mail: text and HTML from one template context, CSV lists attached.

Pure: `DigestData` in, `EmailMessage` out. The participant lists are CSV in UTF-8 with a
byte-order mark, because that is what makes Excel show "Böhmer" instead of "BÃ¶hmer".
"""

from __future__ import annotations

import csv
import io
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from babel.dates import format_date
from babel.dates import format_datetime as babel_datetime

from mailbot.config import Config
from mailbot.digest.collect import DigestData, PersonRow
from mailbot.reply.render import environment, one_line

CSV_COLUMNS = (
    "Name",
    "E-Mail",
    "Organisation",
    "Status",
    "Mittagsimbiss",
    "Rolle",
    "Hinweise",
    "Eingang",
)
STATUS_DE = {
    "confirmed": "angemeldet",
    "waitlisted": "Warteliste",
    "late": "zu spät",
    "cancelled": "abgemeldet",
}
KIND_DE = {
    "error": "Fehler",
    "failed_reply": "Antwort nicht zugestellt",
    "bounce": "Unzustellbar",
    "question": "Offene Frage",
    "review": "Zu prüfen",
}


def spreadsheet_safe(value: str) -> str:
    """Text that Excel shows as text: a leading =, +, -, @ would start a live formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def participant_cells(row: PersonRow, config: Config) -> list[str]:
    """One line of a participant list, the same for the CSV and the Excel export."""
    return [
        row.name or "",
        row.email,
        row.organisation or "",
        STATUS_DE.get(row.status, row.status),
        {True: "ja", False: "nein", None: ""}[row.lunch],
        row.role or "",
        row.notes or "",
        row.arrival.astimezone(config.tz).strftime("%d.%m.%Y %H:%M"),
    ]


def participants_csv(rows: list[PersonRow], config: Config) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in participant_cells(row, config)])
    return buffer.getvalue().encode("utf-8-sig")


def _deadline_text(days: int | None) -> str:
    if days is None:
        return "Anmeldeschluss vorbei"
    if days == 0:
        return "Anmeldeschluss heute"
    return (
        "noch 1 Tag bis zum Anmeldeschluss"
        if days == 1
        else f"noch {days} Tage bis zum Anmeldeschluss"
    )


def context(data: DigestData, config: Config) -> dict[str, object]:
    tz = config.tz
    events = []
    for summary in data.events:
        capacity = max(summary.event.capacity, 1)
        events.append(
            {
                "id": summary.event.id,
                "title": summary.event.title,
                "placeholder": summary.event.placeholder,
                "confirmed": summary.confirmed,
                "capacity": summary.event.capacity,
                "seats_left": summary.seats_left,
                "waitlisted": summary.waitlisted,
                "late": summary.late,
                "cancelled": summary.cancelled,
                "days_to_deadline": summary.days_to_deadline,
                "deadline_text": _deadline_text(summary.days_to_deadline),
                "bars": [
                    {
                        "day": format_date(day, "dd.MM.", locale="de"),
                        "count": count,
                        "percent": min(100, round(100 * count / capacity)),
                        "text": "█" * round(20 * min(count, capacity) / capacity)
                        + "░" * (20 - round(20 * min(count, capacity) / capacity)),
                    }
                    for day, count in summary.history
                ],
            }
        )
    changes = [
        {
            "name": one_line(p.name) or p.email,
            "email": p.email,
            "organisation": one_line(p.organisation),
            "event": p.event_id,
            "status": STATUS_DE.get(p.status, p.status),
            "lunch": {True: "ja", False: "nein", None: "–"}[p.lunch],
            "role": p.role or "–",
            "notes": one_line(p.notes, 300),
            "forwarded_by": p.forwarded_by,
        }
        for p in data.changes
    ]
    attention = [
        {
            "kind": KIND_DE[i.kind],
            "when": babel_datetime(i.when.astimezone(tz), "dd.MM. HH:mm", locale="de"),
            "who": one_line(i.who),
            "text": one_line(i.text, 400),
        }
        for i in data.attention
    ]
    return {
        "day": format_date(data.day, "EEEE, d. MMMM y", locale="de"),
        "since": babel_datetime(data.since.astimezone(tz), "d. MMMM y, HH:mm", locale="de")
        if data.since
        else None,
        "events": events,
        "changes": changes,
        "attention": attention,
        "organiser": config.organiser.model_dump(),
    }


def build_digest(data: DigestData, config: Config) -> EmailMessage:
    env = environment(config)
    ctx = context(data, config)
    message = EmailMessage()
    message["From"] = Address(one_line(config.organiser.name), addr_spec=config.organiser.address)
    message["To"] = ", ".join(config.organiser.digest_to)
    count = len(data.attention)
    flag = f" – {count} zu prüfen" if count else ""
    message["Subject"] = f"mailbot: Tagesübersicht {data.day.strftime('%d.%m.%Y')}{flag}"
    message["Date"] = format_datetime(data.generated_at)
    message["Message-ID"] = make_msgid(domain=config.organiser.domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Loop"] = config.organiser.address
    message.set_content(env.get_template("digest/digest.txt.j2").render(ctx), charset="utf-8")
    message.add_alternative(
        env.get_template("digest/digest.html.j2").render(ctx), subtype="html", charset="utf-8"
    )
    return message


def attach_lists(
    message: EmailMessage, data: DigestData, rows: list[PersonRow], config: Config
) -> None:
    for summary in data.events:
        mine = [r for r in rows if r.event_id == summary.event.id]
        if not mine:
            continue
        message.add_attachment(
            participants_csv(mine, config),
            maintype="text",
            subtype="csv",
            filename=f"teilnehmende-{summary.event.id}.csv",
        )
