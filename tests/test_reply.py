"""Replies as a participant's mail client sees them: parsed back with the stdlib, the calendar
entry parsed back with icalendar and compared with the event in the config."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import REPO, make_config
from icalendar import Calendar

from mailbot.cli import main
from mailbot.config import Config, load_config
from mailbot.decide.rules import Outcome, ReplyKind
from mailbot.reply import SCENARIOS
from mailbot.reply.context import when
from mailbot.reply.ics import calendar_uid
from mailbot.reply.message import build_message, reply_subject
from mailbot.reply.render import ReplyItem, ReplyRequest
from mailbot.reply.samples import SAMPLE_NOW, check_templates, sample_requests

ERIKA = ("Erika Mustermann", "erika.mustermann@example.org")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("reply"))


def sent(request: ReplyRequest, config: Config, now: datetime = SAMPLE_NOW) -> EmailMessage:
    """Through the bytes the outbox stores and back, as a receiving client parses them."""
    raw = build_message(request, config, now).as_bytes(policy=policy.SMTP)
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def text_of(message: EmailMessage) -> str:
    return str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def html_of(message: EmailMessage) -> str:
    return str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]


def calendars(message: EmailMessage) -> list[tuple[EmailMessage, Calendar]]:
    return [
        (part, Calendar.from_ical(part.get_content()))
        for part in message.iter_attachments()
        if part.get_content_type() == "text/calendar"
    ]


def request(
    outcome: Outcome, event_id: str = "werkstatt-2", language: str = "de", **kw: object
) -> ReplyRequest:
    position = 3 if outcome is Outcome.WAITLISTED else None
    values: dict[str, object] = {
        "language": language,
        "recipients": [ERIKA],
        "greeting_name": ERIKA[0],
        "original_subject": "Anmeldung 2. Werkstatt",
        "in_reply_to": "<q1@example.org>",
        "references": ("<q0@example.org>",),
        "items": [ReplyItem(*ERIKA, event_id, outcome, position)],
    }
    values.update(kw)
    return ReplyRequest(kind=ReplyKind.OUTCOMES, **values)  # type: ignore[arg-type]


def test_dates_read_as_people_write_them() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2018, 2, 22, 11, 0, tzinfo=berlin)
    end = datetime(2018, 2, 22, 16, 15, tzinfo=berlin)
    assert when(start, end, "de") == "Donnerstag, 22. Februar 2018, 11:00–16:15 Uhr"
    assert when(start, end, "en") == "Thursday, 22 February 2018, 11:00 am – 4:15 pm"


def test_every_sample_reply_parses_back(config: Config) -> None:
    """All outcomes × events × languages, plus the list replies: structure and headers."""
    count = 0
    for label, req in sample_requests(config):
        message = sent(req, config)
        count += 1
        assert message.is_multipart(), label
        alternative = next(p for p in message.walk() if p.get_content_type().startswith("multi"))
        if message.get_content_type() == "multipart/mixed":
            alternative = next(iter(message.iter_parts()))
        assert [p.get_content_type() for p in alternative.iter_parts()] == [
            "text/plain",
            "text/html",
        ], label
        assert message["Auto-Submitted"] == "auto-replied"
        assert message["From"].addresses[0].addr_spec == config.organiser.address
        assert message["Content-Language"] == req.language
        assert f'<html lang="{req.language}">' in html_of(message), label
        assert text_of(message).strip() and "<" not in text_of(message).split("\n", 1)[0]
        if req.in_reply_to:
            assert message["In-Reply-To"] == req.in_reply_to
            assert message["References"].split()[-1] == req.in_reply_to
        # 7-bit clean on the wire: nothing for a relay to re-encode.
        raw = build_message(req, config, SAMPLE_NOW).as_bytes(policy=policy.SMTP)
        assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 78, label
    assert count == 2 * (len(config.events) * len(Outcome) + 6)


def test_confirmation_content_and_calendar_match_the_event(config: Config) -> None:
    event = config.event_by_id("werkstatt-2")
    assert event is not None
    message = sent(request(Outcome.CONFIRMED), config)
    assert message["Subject"] == "Re: Anmeldung 2. Werkstatt"
    assert message["To"].addresses[0].addr_spec == ERIKA[1]
    text, html = text_of(message), html_of(message)
    for body in (text, html):
        assert "Donnerstag, 22. Februar 2018, 11:00–16:15 Uhr" in body
        assert "Brüderweg 22–24, 44135 Dortmund" in body
        assert "kostenlos" in body and "Abmeldung" in body and "Katinka Gehrig-Fitting" in body
        assert "U41, U45, U47 oder U49" in body and "15 Minuten zu Fuß" in body
        assert "Parallele Arbeitsgruppen" in body
    assert re.search(r"<h1[^>]*>Ihre Anmeldung ist bestätigt</h1>", html)
    assert "<table" not in html and "<img" not in html and 'role="presentation"' not in html
    ((part, cal),) = calendars(message)
    assert part.get_filename() == "werkstatt-2.ics"
    assert part.get_param("method") == "PUBLISH" and cal["METHOD"] == "PUBLISH"
    (vevent,) = cal.walk("VEVENT")
    assert vevent.decoded("DTSTART") == event.start and vevent.decoded("DTEND") == event.end
    assert str(vevent["DTSTART"].params["TZID"]) == "Europe/Berlin"
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert str(vevent["SUMMARY"]) == event.title
    assert str(vevent["LOCATION"]) == f"{config.venue.name}, {config.venue.address}"
    assert "Abmeldung" in str(vevent["DESCRIPTION"]) and "11:00 Begrüßung" in str(
        vevent["DESCRIPTION"]
    )
    assert str(vevent["UID"]) == calendar_uid(ERIKA[1], "werkstatt-2", "ils-forschung.example")
    assert ERIKA[1] not in str(vevent["UID"])


def test_html_programme_shows_times_in_bold_and_other_points_as_written(config: Config) -> None:
    event = config.event_by_id("werkstatt-2")
    assert event is not None
    programme = ["11:00 Begrüßung", "Ende gegen 16:15 <offen>", "16:15"]
    changed = event.model_copy(update={"programme": programme})
    events = [changed if e.id == event.id else e for e in config.events]
    html = html_of(sent(request(Outcome.CONFIRMED), config.model_copy(update={"events": events})))
    assert '<li style="margin:0 0 2px;"><strong>11:00</strong> Begrüßung</li>' in html
    assert '<li style="margin:0 0 2px;">Ende gegen 16:15 &lt;offen&gt;</li>' in html
    assert '<li style="margin:0 0 2px;"><strong>16:15</strong> </li>' in html


def test_english_confirmation(config: Config) -> None:
    message = sent(request(Outcome.CONFIRMED, language="en"), config)
    for body in (text_of(message), html_of(message)):
        assert "Thursday, 22 February 2018, 11:00 am – 4:15 pm" in body
        assert "free of charge" in body and '"cancel"' in body
    assert message["Content-Language"] == "en"


def test_cancellation_cancels_the_same_calendar_entry(config: Config) -> None:
    confirmed = sent(request(Outcome.CONFIRMED), config)
    later = SAMPLE_NOW + timedelta(days=3)
    cancelled = sent(request(Outcome.CANCELLED), config, later)
    ((_, first),) = calendars(confirmed)
    ((part, cancel),) = calendars(cancelled)
    assert cancel["METHOD"] == "CANCEL" and part.get_param("method") == "CANCEL"
    (a,), (b,) = first.walk("VEVENT"), cancel.walk("VEVENT")
    assert a["UID"] == b["UID"] and b["SEQUENCE"] > a["SEQUENCE"]
    assert str(b["STATUS"]) == "CANCELLED" and b.decoded("DTSTART") == a.decoded("DTSTART")
    assert "Abmeldung" in text_of(cancelled) and "entfernt den Termin" in text_of(cancelled)


@pytest.mark.parametrize(
    "outcome", [Outcome.WAITLISTED, Outcome.LATE, Outcome.NOT_REGISTERED, Outcome.PROMOTED]
)
def test_which_outcomes_carry_a_calendar_entry(config: Config, outcome: Outcome) -> None:
    message = sent(request(outcome), config)
    assert bool(calendars(message)) is (outcome is Outcome.PROMOTED)


def test_waitlist_position_and_deadline_are_named(config: Config) -> None:
    assert "Warteliste auf Platz 3" in text_of(sent(request(Outcome.WAITLISTED), config))
    late = text_of(sent(request(Outcome.LATE, language="en"), config))
    assert "9 February 2018" in late


def test_late_waiting_list_place_promises_no_automatic_move_up(config: Config) -> None:
    """Under `late_policy = "waitlist"` a late place moves up only by the organiser's hand, so
    its reply names the deadline instead of "fully booked, moves up automatically"."""
    late_item = [ReplyItem(*ERIKA, "werkstatt-2", Outcome.WAITLISTED, 4, late=True)]
    german = sent(request(Outcome.WAITLISTED, items=late_item), config)
    for text in (text_of(german), html_of(german)):
        assert "Anmeldeschluss" in text and "Warteliste auf Platz 4" in text
        assert "nicht automatisch nach" in text and "ausgebucht" not in text
    english = text_of(sent(request(Outcome.WAITLISTED, language="en", items=late_item), config))
    assert "do not move up automatically" in english and "fully booked" not in english
    on_time = text_of(sent(request(Outcome.WAITLISTED), config))
    assert "ausgebucht" in on_time and "rückt die Warteliste automatisch nach" in on_time


def test_placeholder_event_says_date_follows_and_has_no_calendar(config: Config) -> None:
    message = sent(request(Outcome.CONFIRMED, "werkstatt-3"), config)
    assert "Termin folgt" in text_of(message) and "Termin folgt" in html_of(message)
    assert calendars(message) == [] and message.get_content_type() == "multipart/alternative"


def test_several_people_get_one_reply_listing_each(config: Config) -> None:
    max_ = ("Max Mustermann", "max@example.org")
    req = request(
        Outcome.CONFIRMED,
        recipients=[ERIKA, max_],
        items=[
            ReplyItem(*ERIKA, "werkstatt-2", Outcome.CONFIRMED),
            ReplyItem(*max_, "werkstatt-2", Outcome.WAITLISTED, 1),
        ],
    )
    message = sent(req, config)
    assert [a.addr_spec for a in message["To"].addresses] == [ERIKA[1], max_[1]]
    text = text_of(message)
    assert "Erika Mustermann ist für die 2. Werkstatt" in text
    assert "Max Mustermann steht auf der Warteliste auf Platz 1" in text
    ((_, cal),) = calendars(message)  # one entry per event: the sender's, no duplicates
    (vevent,) = cal.walk("VEVENT")
    assert str(vevent["UID"]) == calendar_uid(ERIKA[1], "werkstatt-2", "ils-forschung.example")


def test_series_lists_each_workshop(config: Config) -> None:
    items = [ReplyItem(*ERIKA, e.id, Outcome.CONFIRMED) for e in config.events]
    message = sent(request(Outcome.CONFIRMED, items=items), config)
    text = text_of(message)
    for event in config.events:
        assert event.title in text
    assert text.count("Termin folgt") >= 3
    assert [p.get_filename() for p, _ in calendars(message)] == ["werkstatt-2.ics"]


def test_missing_data_says_exactly_what_is_missing(config: Config) -> None:
    req = ReplyRequest(
        kind=ReplyKind.MISSING_DATA,
        language="de",
        recipients=[ERIKA],
        missing=["name", "event"],
        unknown_events=[7],
    )
    text = text_of(sent(req, config))
    assert "Ihr vollständiger Name" in text and "eine 7. Werkstatt gibt es nicht" in text
    assert "4. Werkstatt: Verstetigung (Termin folgt)" in text


@pytest.mark.parametrize(
    ("original", "language", "expected"),
    [
        ("", "de", "Ihre Anmeldung"),
        ("  ", "en", "Your registration"),
        ("AW: Anmeldung", "de", "AW: Anmeldung"),
        ("Anmeldung", "en", "Re: Anmeldung"),
    ],
)
def test_subject(original: str, language: str, expected: str) -> None:
    assert reply_subject(original, language) == expected


def test_check_renders_everything(config: Config) -> None:
    assert check_templates(config) == []


def test_check_names_file_and_line_of_a_broken_html_template(tmp_path: Path) -> None:
    broken = tmp_path / "templates" / "en"
    broken.mkdir(parents=True)
    (broken / "reply.html.j2").write_text("<p>\n{{ organiser.nmae }}</p>\n", encoding="utf-8")
    (tmp_path / "config.toml").write_bytes((REPO / "config.toml").read_bytes())
    config = load_config(tmp_path / "config.toml")
    problems = check_templates(config)
    assert problems and all("en/reply.html.j2:2" in p and "nmae" in p for p in problems)
    assert all(p.startswith("en/") for p in problems)  # German still renders from the defaults


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_preview_every_scenario(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, eml = tmp_path / "r.html", tmp_path / "r.eml"
    args = ["preview", scenario, "--config", str(REPO / "config.toml"), "--eml", str(eml)]
    if scenario != "forward":  # the organisers' copy is plain text
        args += ["--html", str(html)]
    assert main([*args, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "Subject: " in out and "From: " in out
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Message-ID"]
    if scenario != "forward":
        assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_preview_unknown_event_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(REPO / "config.toml")
    assert main(["preview", "confirmed", "--event", "nope", "--config", config]) == 1
    assert capsys.readouterr().err.startswith("error: unknown event 'nope'")


def test_sequence_grows_with_time() -> None:
    from mailbot.reply.ics import sequence

    assert sequence(datetime(2018, 1, 1, tzinfo=UTC)) < sequence(
        datetime(2018, 1, 1, 0, 1, tzinfo=UTC)
    )
