"""The reply fast paths (issue 7) give the very bytes the plain stdlib/icalendar paths give.

`calendar_text` reuses a cached calendar shell and `build_message` uses a header registry that
builds each header class once; both exist only for speed, so these tests pin them to the
uncached reference, byte for byte, over names, addresses, methods, languages and times.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import make_config

from mailbot.reply import ics, mailpolicy, message
from mailbot.reply.samples import sample_request

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


@pytest.mark.parametrize("scenario", ["confirmed", "waitlisted", "cancelled", "several_people"])
@pytest.mark.parametrize("language", ["de", "en"])
def test_reply_policy_gives_the_stdlib_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, language: str
) -> None:
    config = make_config(tmp_path)
    request = sample_request(scenario, language, config, None)
    now = datetime(2018, 1, 5, 10, 0, tzinfo=UTC)
    monkeypatch.setattr(message, "make_msgid", lambda domain: f"<fixed@{domain}>")
    random.seed(5)  # the MIME boundaries
    fast = message.build_message(request, config, now).as_bytes(policy=policy.SMTP)
    monkeypatch.setattr(message, "new_message", EmailMessage)
    random.seed(5)
    plain = message.build_message(request, config, now).as_bytes(policy=policy.SMTP)
    assert fast == plain
    assert (
        mailpolicy.REPLY_POLICY.header_factory["To"] is mailpolicy.REPLY_POLICY.header_factory["to"]
    )
