"""Reading ahead in a helper process gives what reading in this process gives, and a helper
that dies costs speed, never a mail."""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import JAN, form, mail, make_config

from mailbot.inbox.imap import FetchedMail
from mailbot.reading import ReadAhead, read_inline


def fetched(count: int) -> list[tuple[FetchedMail, bool]]:
    mails = []
    for i in range(count):
        raw = mail(
            form(f"Person {i}", f"p{i}@example.org"), sender=f"Person {i} <p{i}@example.org>"
        )
        mails.append((FetchedMail(i + 1, raw, JAN + timedelta(minutes=i), len(raw)), i == 3))
    return mails


def test_read_ahead_equals_reading_here(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    mails = fetched(8)
    reader = ReadAhead(config)
    try:
        first, second = reader.submit(mails[:4]), reader.submit(mails[4:])
        assert first() + second() == read_inline(config, mails)
    finally:
        reader.close()


def test_a_dead_helper_is_replaced_by_reading_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    mails = fetched(4)
    reader = ReadAhead(config)
    try:
        assert reader.submit(mails[:1])() == read_inline(config, mails[:1])  # helper is up
        assert reader.pool is not None
        for pid in list(reader.pool._processes):  # the only way to reach the helper
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="mailbot"):
            assert reader.submit(mails)() == read_inline(config, mails)
        assert "read-ahead process is gone" in caplog.text
        assert reader.pool is None
        assert reader.submit(mails[:2])() == read_inline(config, mails[:2])
    finally:
        reader.close()
