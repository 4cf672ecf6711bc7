"""The cached calendar (issue 7) gives the very bytes the plain icalendar path gives.

`calendar_text` reuses a cached calendar shell; it exists only for speed, so these tests pin
it to the uncached reference, byte for byte, over names, addresses, methods, languages and
times. (The directly written reply has its own oracle: tests/test_reply_wire.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import make_config

from mailbot.reply import ics

NAMES = [None, "Müller, Anna", "O'Connor; Declan", 'Quote "x" Name', "Ü" * 60]
ADDRESSES = ["a@b.example", "a.very.long.local.part.of.someone@sub.domain.stadt-dortmund.example"]


def test_cached_calendar_is_byte_identical(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    count = 0
    for event in config.events:
        for method in ("PUBLISH", "CANCEL"):
            for language in ("de", "en"):
                for name in NAMES:
                    for address in ADDRESSES:
                        now = datetime(2018, 1, 5, tzinfo=UTC) + timedelta(seconds=977 * count)
                        args = (event, address, name, method, language, config, now)
                        assert ics.calendar_text(*args) == ics._full_calendar_text(*args)
                        count += 1


def test_plain_and_odd_organiser_domains_give_the_reference_bytes(tmp_path: Path) -> None:
    """The PUBLISH lines written without icalendar, and the fallback for a domain that needs
    escaping or folding."""
    base = make_config(tmp_path)
    event = base.event_by_id("werkstatt-2")
    assert event is not None
    domains = ["ils-forschung.example", "x" * 60 + ".example", "odd;dom,ain.example"]
    for domain in domains:
        organiser = base.organiser.model_copy(update={"address": f"anmeldung@{domain}"})
        config = base.model_copy(update={"organiser": organiser})
        assert config.organiser.domain == domain
        for second in (0, 59, 3600 * 24 * 400 + 1):
            now = datetime(2018, 1, 5, 23, 59, tzinfo=UTC) + timedelta(seconds=second)
            args = (event, "a@b.example", "Anna", "PUBLISH", "de", config, now)
            assert ics.calendar_text(*args) == ics._full_calendar_text(*args)


def test_calendar_shell_follows_a_new_config(tmp_path: Path) -> None:
    now = datetime(2018, 1, 5, tzinfo=UTC)
    first = make_config(tmp_path)
    event = first.event_by_id("werkstatt-2")
    assert event is not None
    before = ics.calendar_text(event, "a@b.example", None, "PUBLISH", "de", first, now)
    second = first.model_copy(
        update={"venue": first.venue.model_copy(update={"name": "Anderer Ort"})}
    )
    event2 = second.event_by_id("werkstatt-2")
    assert event2 is not None
    after = ics.calendar_text(event2, "a@b.example", None, "PUBLISH", "de", second, now)
    assert "Anderer Ort" in after and "Anderer Ort" not in before
