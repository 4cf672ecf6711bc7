"""The IMAP adapter: connect, list new UIDs, fetch them without marking them read, move them.

Nothing here decides anything. It exists so the worker can say "give me mail after UID n"
and "put these UIDs there" while the protocol's traps stay in one place: `n:*` returning the
last message, servers without MOVE, naive INTERNALDATEs, and connections without timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailbot.config import ImapSettings, redacted

log = logging.getLogger(__name__)

FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]
_MAX_IMAP_NUMBER = 2**32 - 1  # RFC 3501's number: sizes fit in it, larger ones are refused
_SIZES_PER_FETCH = 500


class InboxError(Exception):
    """The mailbox could not be reached or refused an operation; the cycle will retry later."""


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    arrival: datetime
    size: int


def _tls_context() -> ssl.SSLContext:
    # Certificates are verified against the system store; never switched off silently.
    return ssl.create_default_context()


class ImapInbox:
    """One session on one folder. Use as a context manager; every socket call has a timeout."""

    def __init__(
        self,
        settings: ImapSettings,
        ssl_context: ssl.SSLContext | None = None,
        *,
        watch_only: bool = False,
    ) -> None:
        self.settings = settings
        self._ssl_context = ssl_context
        # A watching connection (IDLE) selects read-only and creates nothing.
        self.watch_only = watch_only
        self._client: IMAPClient | None = None
        self.uidvalidity: int = 0
        self.can_move = False
        self.delimiter = "/"

    def __enter__(self) -> ImapInbox:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise InboxError("IMAP session is not open")
        return self._client

    def open(self) -> None:
        s = self.settings
        # Loading the system's certificates costs 30-40 ms: only for a session that uses them.
        context = None if s.security == "none" else self._ssl_context or _tls_context()
        try:
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.security == "ssl",
                ssl_context=context if s.security == "ssl" else None,
                timeout=s.timeout_seconds,
            )
            client.normalise_times = False
            if s.security == "starttls":
                client.starttls(context)
            client.login(s.username, s.password or "")
            self._client = client
            self.can_move = client.has_capability("MOVE")
            self.delimiter = _delimiter(client)
            for folder in () if self.watch_only else (s.processed_folder, s.review_folder):
                name = self.server_name(folder)
                if not client.folder_exists(name):
                    client.create_folder(name)
                    log.info("created IMAP folder %s", name)
            status = client.select_folder(self.server_name(s.folder), readonly=self.watch_only)
        except (IMAPClientError, OSError) as exc:
            self.close()
            raise InboxError(f"IMAP {s.host}:{s.port}: {redacted(exc, s.password)}") from None
        self.uidvalidity = int(status[b"UIDVALIDITY"])

    def server_name(self, folder: str) -> str:
        """Config folders are written with "/"; the server may separate levels with "." instead."""
        return folder.replace("/", self.delimiter) if self.delimiter else folder

    def close(self) -> None:
        if self._client is None:
            return
        client, self._client = self._client, None
        try:
            client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(IMAPClientError, OSError):
                client.shutdown()

    def new_uids(self, after: int) -> list[int]:
        """UIDs above `after`, ascending. `n:*` always matches the last mail, so filter again."""
        try:
            found = self.client.search(["UID", f"{after + 1}:*"])
        except (IMAPClientError, OSError) as exc:
            raise InboxError(f"IMAP SEARCH failed: {exc}") from None
        return sorted(uid for uid in found if uid > after)

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMail]:
        """Fetch with BODY.PEEK so mail that turns out not to be ours keeps its unread state."""
        if not uids:
            return
        try:
            response = self.client.fetch(list(uids), FETCH_ITEMS)
        except (IMAPClientError, OSError) as exc:
            raise InboxError(f"IMAP FETCH failed: {exc}") from None
        for uid in uids:
            data = response.get(uid)
            if not data or b"BODY[]" not in data:
                continue  # expunged meanwhile, or a partial answer: never treat as handled
            yield FetchedMail(
                uid,
                bytes(data[b"BODY[]"]),
                _arrival(data.get(b"INTERNALDATE")),
                int(data.get(b"RFC822.SIZE", 0)),
            )

    def larger_than(self, uids: Sequence[int], limit: int) -> set[int]:
        """Which of `uids` are mails over `limit` bytes, so a huge mail is never downloaded.

        One SEARCH for the whole backlog (LARGER counts the same RFC 5322 size as
        RFC822.SIZE): asking each batch's sizes by FETCH cost a round trip and a parsed line
        per mail, about a tenth of a millisecond each in a rush (bench/rush.py). A server that
        refuses the SEARCH (LARGER is in every IMAP4rev1 server, but a proxy may differ) is
        asked for the sizes instead, with one warning.
        """
        if not uids or limit >= _MAX_IMAP_NUMBER:  # no size an IMAP server reports is larger
            return set()
        wanted = set(uids)
        try:
            found = self.client.search(["UID", f"{min(uids)}:{max(uids)}", "LARGER", str(limit)])
            return wanted.intersection(found)
        except OSError as exc:
            raise InboxError(f"IMAP SEARCH (sizes) failed: {exc}") from None
        except IMAPClientError as exc:
            log.warning("IMAP SEARCH LARGER refused (%s); asking for the sizes instead", exc)
        ordered, over = sorted(wanted), set()
        for start in range(0, len(ordered), _SIZES_PER_FETCH):  # command lines have a limit
            try:
                response = self.client.fetch(
                    ordered[start : start + _SIZES_PER_FETCH], [b"RFC822.SIZE"]
                )
            except (IMAPClientError, OSError) as exc:
                raise InboxError(f"IMAP FETCH (sizes) failed: {exc}") from None
            over |= {
                uid for uid, data in response.items() if int(data.get(b"RFC822.SIZE", 0)) > limit
            }
        return over & wanted

    def fetch_headers(self, uids: Sequence[int]) -> Iterator[FetchedMail]:
        """Only the header of each mail (BODY.PEEK[HEADER]): enough to say who sent what."""
        if not uids:
            return
        try:
            response = self.client.fetch(
                list(uids), [b"BODY.PEEK[HEADER]", b"INTERNALDATE", b"RFC822.SIZE"]
            )
        except (IMAPClientError, OSError) as exc:
            raise InboxError(f"IMAP FETCH (headers) failed: {exc}") from None
        for uid in uids:
            data = response.get(uid)
            if not data or b"BODY[HEADER]" not in data:
                continue
            yield FetchedMail(
                uid,
                bytes(data[b"BODY[HEADER]"]),
                _arrival(data.get(b"INTERNALDATE")),
                int(data.get(b"RFC822.SIZE", 0)),
            )

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            # .SILENT: the server does not echo every message's new flags (parsed for nothing).
            self._guard(
                lambda: self.client.add_flags(list(uids), [b"\\Seen"], silent=True), "STORE"
            )

    def move(self, uids: Sequence[int], folder: str) -> None:
        """MOVE where the server has it, else COPY + \\Deleted + (UID) EXPUNGE of just these UIDs."""
        if not uids:
            return
        uid_list = list(uids)
        folder = self.server_name(folder)

        def _do() -> None:
            if self.can_move:
                self.client.move(uid_list, folder)
                return
            self.client.copy(uid_list, folder)
            self.client.add_flags(uid_list, [b"\\Deleted"], silent=True)
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge(uid_list)
            else:
                self.client.expunge()

        self._guard(_do, "MOVE")

    def _guard(self, action: object, what: str) -> None:
        try:
            action()  # type: ignore[operator]
        except (IMAPClientError, OSError) as exc:
            raise InboxError(f"IMAP {what} failed: {exc}") from None


def _arrival(value: object) -> datetime:
    """INTERNALDATE as an aware datetime; a server that sends none gets "now", with a warning.

    In UTC with the stdlib's tzinfo: imapclient's own FixedOffset cannot be pickled, and the
    mail goes to the read-ahead process (reading.py) in a rush."""
    if not isinstance(value, datetime):
        log.warning("IMAP server sent no INTERNALDATE; using the current time as arrival")
        return datetime.now(UTC)
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _delimiter(client: IMAPClient) -> str:
    """The server's hierarchy separator, from LIST "" "" (RFC 3501, 6.3.8)."""
    try:
        for _flags, delimiter, _name in client.list_folders("", ""):
            if delimiter:
                return delimiter.decode() if isinstance(delimiter, bytes) else str(delimiter)
    except (IMAPClientError, OSError):
        pass
    return "/"
