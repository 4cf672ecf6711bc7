"""Participant lists as files organisers open: CSV for Excel (UTF-8 with BOM) or a real .xlsx."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

from mailbot.config import Config, EventSettings
from mailbot.digest.collect import people
from mailbot.digest.render import CSV_COLUMNS, participant_cells, participants_csv


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
        sheet.append(participant_cells(row, config))
        # Everything from a mail is text, never a formula ("=HYPERLINK(...)" in a name).
        for cell in sheet[sheet.max_row]:
            cell.data_type = "s"
    for column, width in zip("ABCDEFGH", (28, 34, 30, 12, 14, 12, 40, 18), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    book.save(path)
    return path
