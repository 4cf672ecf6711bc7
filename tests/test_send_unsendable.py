"""A reply that cannot be put on the wire fails alone; the replies after it still go out.

Found by review: a digest to `orga@bürgerstiftung.example` (an address with an umlaut,
which the config let through) raised UnicodeEncodeError in the mail library. The sender
caught only SMTP and network errors, so the error ended the whole pass; the reply was due
first again at the next pass, and nothing after it was ever sent (`mailbot run` logged
"cycle failed unexpectedly" every minute). The config now refuses such an address
(tests/test_config.py); the sender still must not let one reply stop all the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import queue_replies
from servers import SmtpSink
from sqlalchemy import select

from mailbot.config import SmtpSettings
from mailbot.send import smtp
from mailbot.store.db import Store
from mailbot.store.schema import outbox

pytestmark = pytest.mark.servers

NOW = datetime(2018, 1, 20, 7, 30, tzinfo=UTC)
SENDER = "anmeldung@ils-forschung.example"
UMLAUT = "orga@bürgerstiftung.example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    yield found
    found.close()


def queue_to(store: Store, key: str, recipients: list[str]) -> None:
    with store.transaction() as conn:
        store.enqueue(
            conn,
            key=key,
            message_row=None,
            purpose="digest",
            recipients=recipients,
            message_id=f"<{key}@ils-forschung.example>",
            raw=b"Subject: Digest\r\n\r\nDigest\r\n",
            now=NOW,
        )


def replies(store: Store) -> list[Any]:
    with store.transaction() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.id)))


@pytest.mark.parametrize(
    "recipients", [[UMLAUT], ["team@ils-forschung.example", UMLAUT]], ids=["alone", "second"]
)
def test_a_reply_to_an_address_with_an_umlaut_fails_alone(
    store: Store, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture, recipients: list[str]
) -> None:
    """With the umlaut second, MAIL FROM and the first RCPT TO were accepted before the error:
    the envelope was half open on the server, and the next reply must not run into it."""
    queue_to(store, "digest:2018-01-20", recipients)
    queue_replies(store, 1, 2, NOW)
    settings = SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, security="none")
    for _ in range(2):  # the next pass is not stopped by it either
        report = asyncio.run(
            asyncio.wait_for(smtp.send_outbox(store, settings, SENDER, lambda: NOW), timeout=30)
        )
    bad, *good = replies(store)
    assert bad.failed_at is not None and bad.sent_at is None
    assert "cannot be sent as it is: UnicodeEncodeError" in bad.last_error, bad.last_error
    assert all(r.sent_at is not None for r in good)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["p1@example.org"], ["p2@example.org"]]
    assert report.sent == report.failed == 0  # the second pass: nothing left to do
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].exc_info is None, [r.getMessage() for r in lines]
    assert "digest:2018-01-20" in lines[0].getMessage() and "Traceback" not in caplog.text
