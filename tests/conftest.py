"""Fixtures for the real-server tests: a private Dovecot and an SMTP sink (see servers.py).

The ``dovecot`` fixture is function-scoped: a fresh server starts in about 0.04 s and stops in a
few milliseconds, so every test gets an empty account with UIDs from 1 and nothing to clean up.
A missing Dovecot is an error, never a skip: CI must not go green without the server tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Dovecot, SmtpSink

import mailbot.registrar as registrar
from mailbot.reply import templating


@pytest.fixture(scope="session", autouse=True)
def private_template_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled templates of this test run go to a directory of its own, not to the user's
    cache in /tmp: every test's template folder is a new key there, and a test must not
    depend on what earlier runs (or a mailbot of the same user) left behind."""
    folder = tmp_path_factory.mktemp("template-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            templating,
            "template_cache",
            lambda: templating.CompiledTemplates(str(folder), templating.CACHE_PATTERN),
        )
        yield folder


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


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """While `fault[0]` is true, deciding on Anna's (anna.arndt@example.org) mail raises:
    a mail that fails in its savepoint, for tests of retries (a fault, not a real part)."""
    real_decide = registrar.decide
    on = [True]

    def flaky(parsed, *args, **kwargs):  # type: ignore[no-untyped-def]
        if on[0] and parsed.headers.from_address == "anna.arndt@example.org":
            raise RuntimeError("injected fault")
        return real_decide(parsed, *args, **kwargs)

    monkeypatch.setattr(registrar, "decide", flaky)
    return on
