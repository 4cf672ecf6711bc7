"""Participant lists as files organisers open: CSV for Excel (UTF-8 with BOM) or a real .xlsx."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

from mailbot.config import Config, EventSettings
from mailbot.digest.collect import people
from mailbot.digest.render import CSV_COLUMNS, STATUS_DE, participants_csv


def export_event(
    conn: Connection, config: Config, event: EventSettings, fmt: str, output: Path | None
) -> Path:
    rows = people(conn, event.id)
    path = output or Path(f"teilnehmende-{event.id}.{fmt}")
    if fmt == "csv":
        path.write_bytes(participants_csv(rows, config))
        return path
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = event.id[:31]
    sheet.append(list(CSV_COLUMNS))
    for row in rows:
        sheet.append(
            [
                row.name or "",
                row.email,
                row.organisation or "",
                STATUS_DE.get(row.status, row.status),
                {True: "ja", False: "nein", None: ""}[row.lunch],
                row.role or "",
                row.notes or "",
                row.arrival.astimezone(config.tz).replace(tzinfo=None),
            ]
        )
    for column, width in zip("ABCDEFGH", (28, 34, 30, 12, 14, 12, 40, 18), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    book.save(path)
    return path
