"""Fixtures for the real-server tests: a private Dovecot and an SMTP sink (see servers.py).

The ``dovecot`` fixture is function-scoped: a fresh server starts in about 0.04 s and stops in a
few milliseconds, so every test gets an empty account with UIDs from 1 and nothing to clean up.
A missing Dovecot is an error, never a skip: CI must not go green without the server tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import Dovecot, SmtpSink


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A running Dovecot with one user (``username``/``password``) and an empty INBOX."""
    try:
        server = Dovecot()
    except RuntimeError as exc:  # binary or system users missing: say what to install
        message = f"cannot run the Dovecot test server: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None
    with server:
        yield server


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink without AUTH that accepts and records every message."""
    with SmtpSink() as sink:
        yield sink
