"""IMAP IDLE (RFC 2177): hear about new mail within a second instead of at the next poll.

A separate connection waits in IDLE and calls `on_new_mail` when the server announces a new
message; the worker then runs a cycle at once. The poll interval stays as the fallback, so a
server without IDLE, a dropped connection or a silent network costs latency, never mail.
Every wait is bounded: IDLE is renewed well inside the 29 minutes servers allow, and each
`idle_check` returns after a few seconds so a stop request is seen quickly.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable

from imapclient.exceptions import IMAPClientError

from mailbot.config import ImapSettings
from mailbot.inbox.imap import ImapInbox, InboxError

log = logging.getLogger("mailbot")

RENEW_SECONDS = 20 * 60
CHECK_SECONDS = 5.0
MAX_BACKOFF = 300.0


class IdleWatcher(threading.Thread):
    """Runs until `stop()`; reconnects with backoff; gives up only if the server lacks IDLE."""

    def __init__(
        self,
        settings: ImapSettings,
        on_new_mail: Callable[[], None],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name="imap-idle", daemon=True)
        self.settings = settings
        self.on_new_mail = on_new_mail
        self.ssl_context = ssl_context
        self._stop_event = threading.Event()
        self.supported: bool | None = None  # None until the first connection answered

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        backoff = 5.0
        while not self._stop_event.is_set():
            try:
                self._watch()
                backoff = 5.0
            except (InboxError, IMAPClientError, OSError) as exc:
                log.warning(
                    "IMAP IDLE connection lost (%s); polling continues, retry in %ds",
                    _one_line(exc),
                    int(backoff),
                )
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            if self.supported is False:
                return

    def _watch(self) -> None:
        with ImapInbox(self.settings, self.ssl_context, watch_only=True) as inbox:
            client = inbox.client
            if not client.has_capability("IDLE"):
                self.supported = False
                log.info("the IMAP server offers no IDLE: new mail waits for the next poll")
                return
            self.supported = True
            log.info("IMAP IDLE on %s: new mail is handled within seconds", self.settings.folder)
            # Something may have arrived while we were connecting.
            self.on_new_mail()
            while not self._stop_event.is_set():
                client.idle()
                started = time.monotonic()
                try:
                    while not self._stop_event.is_set():
                        responses = client.idle_check(timeout=CHECK_SECONDS)
                        if any(_announces_mail(r) for r in responses):
                            self.on_new_mail()
                        if time.monotonic() - started > RENEW_SECONDS:
                            break
                finally:
                    client.idle_done()


def _announces_mail(response: object) -> bool:
    return (
        isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")
    )


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or exc.__class__.__name__).split())
