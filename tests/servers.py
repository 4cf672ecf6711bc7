"""Real mail servers for tests: a private Dovecot IMAP server and an in-process SMTP sink.

Why real servers: mailbot's correctness depends on what an IMAP server actually does (INTERNALDATE
with a time zone, MOVE, UIDs, \\Seen handling of BODY.PEEK[]) and on what an SMTP server actually
answers (envelope recipients, temporary and permanent errors).  A mock would only repeat our own
assumptions, so the tests talk to Debian's Dovecot (``dovecot-imapd``) and to aiosmtpd.

Dovecot runs from a config file this module writes into a temporary directory, in the foreground
(``dovecot -c FILE -F``) on 127.0.0.1 and a free port, with its own base_dir, state_dir and log, so
it never touches the system's Dovecot.  The facts it relies on (login processes must not run as
root, mail must belong to a system user with a UID above ``first_valid_uid``, readiness is the
``* OK`` greeting) are in the project's shared notes on running Dovecot for tests.

This module has no pytest imports; ``tests/conftest.py`` wraps it in fixtures.
"""

from __future__ import annotations

import contextlib
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

__all__ = ["Dovecot", "Received", "SmtpSink", "find_dovecot", "free_port"]

DEFAULT_USERNAME = "anmeldung@ils-forschung.example"
DEFAULT_PASSWORD = "test-passwort-123"
INSTALL_HINT = "install Debian package dovecot-imapd (apt-get install dovecot-imapd)"

# Unix socket paths are limited to 108 bytes; Dovecot puts sockets two levels below base_dir.
_MAX_BASE_DIR = 60


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_dovecot() -> str:
    """Path of the ``dovecot`` binary, or a RuntimeError that says how to install it."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"dovecot binary not found: {INSTALL_HINT}")


# --------------------------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------------------------

_CONFIG_TEMPLATE = """\
# Written by tests/servers.py for one test server; not the system's Dovecot.
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log_path}
info_log_path = {log_path}
debug_log_path = {log_path}
auth_verbose = yes
# Dovecot waits 2 s before answering a failed login; tests of wrong passwords need no wait.
auth_failure_delay = 0

protocols = imap
listen = 127.0.0.1
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login

# Login processes refuse to run as root; the users come with the Debian package.
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd_file}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={home_root}/%u
}}

mail_location = maildir:~/Maildir
mail_plugins =
mail_fsync = never
# IDLE and MOVE are in Dovecot's default CAPABILITY; imap_capability is left alone on purpose.
mailbox_idle_check_interval = 1 secs

namespace inbox {{
  inbox = yes
  separator = {separator}
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
{imaps_ssl}
  }}
}}
service anvil {{
  chroot =
}}
"""


def _make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """Create a self-signed certificate for 127.0.0.1/localhost with the openssl CLI.

    ``openssl`` is a dependency of Debian's dovecot-core, so it is present wherever Dovecot is.
    The certificate is its own CA: a client trusts it with ``ssl.create_default_context(cafile=
    cert)``.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl CLI not found (Debian package openssl)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cmd = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make a test certificate:\n{result.stderr}")
    key.chmod(0o600)
    return cert, key


class Dovecot:
    """A private Dovecot IMAP server with one user, for the duration of a ``with`` block.

    ``Dovecot()`` listens for plain IMAP on ``host``/``port``; ``Dovecot(tls=True)`` listens for
    implicit TLS (IMAPS) there instead, with a self-signed certificate whose file is ``ca_file``.
    """

    host: str = "127.0.0.1"

    def __init__(
        self,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        tls: bool = False,
        port: int | None = None,
        separator: str = "/",
        startup_timeout: float = 15.0,
    ) -> None:
        self.username = username
        self.password = password
        self.tls = tls
        self.separator = separator  # "." is what many real Maildir setups use
        self.port = port if port is not None else free_port(self.host)
        self.startup_timeout = startup_timeout
        self.binary = find_dovecot()
        self.ca_file: Path | None = None
        self.startup_seconds: float | None = None  # of the last start(), for curious tests
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths ------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The temporary directory with config, log, runtime files and the mail."""
        if self._dir is None:
            raise RuntimeError("Dovecot server is not set up; use it as a context manager")
        return self._dir

    @property
    def config_file(self) -> Path:
        return self.directory / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self.directory / "dovecot.log"

    @property
    def pid(self) -> int:
        """The Dovecot master process (its imap processes run below it)."""
        if self._proc is None:
            raise RuntimeError("Dovecot server is not running; use it as a context manager")
        return self._proc.pid

    @property
    def maildir(self) -> Path:
        """The user's Maildir (INBOX's cur/new/tmp; other folders as ``.Name`` subdirectories)."""
        return self.directory / "home" / self.username / "Maildir"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._setup()
        try:
            self.start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self._cleanup()

    def _setup(self) -> None:
        tmp = tempfile.mkdtemp(prefix="mailbot-dovecot-")
        if len(tmp) > _MAX_BASE_DIR:  # a long $TMPDIR would break Dovecot's unix sockets
            shutil.rmtree(tmp)
            tmp = tempfile.mkdtemp(prefix="mailbot-dovecot-", dir="/tmp")
        self._dir = Path(tmp)
        # The mail user (not root) has to reach its home below this directory.
        self._dir.chmod(0o755)

        mail_user, login_user, internal_user = self._users()
        mail_pw = pwd.getpwnam(mail_user)
        home_root = self._dir / "home"
        home = home_root / self.username
        home.mkdir(parents=True)
        home_root.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(home, mail_pw.pw_uid, mail_pw.pw_gid)
        home.chmod(0o700)

        passwd_file = self._dir / "passwd"
        passwd_file.write_text(f"{self.username}:{{PLAIN}}{self.password}::::::\n")
        passwd_file.chmod(0o600)
        if os.geteuid() == 0:  # the auth process runs as the internal user and must read it
            internal_pw = pwd.getpwnam(internal_user)
            os.chown(passwd_file, internal_pw.pw_uid, internal_pw.pw_gid)

        if self.tls:
            cert, key = _make_self_signed_cert(self._dir)
            self.ca_file = cert
            ssl_settings = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}"
            imap_port, imaps_port, imaps_ssl = 0, self.port, "    ssl = yes"
        else:
            ssl_settings = "ssl = no"
            imap_port, imaps_port, imaps_ssl = self.port, 0, ""

        self.config_file.write_text(
            _CONFIG_TEMPLATE.format(
                base_dir=self._dir / "run",
                state_dir=self._dir / "state",
                log_path=self.log_file,
                ssl_settings=ssl_settings,
                login_user=login_user,
                internal_user=internal_user,
                mail_uid=mail_pw.pw_uid,
                mail_gid=mail_pw.pw_gid,
                passwd_file=passwd_file,
                home_root=home_root,
                imap_port=imap_port,
                imaps_port=imaps_port,
                imaps_ssl=imaps_ssl,
                separator=self.separator,
            )
        )

    @staticmethod
    def _users() -> tuple[str, str, str]:
        """(mail user, login user, internal user).

        As root (CI, the dev machines) Dovecot needs unprivileged system users: the package's
        ``dovecot`` user owns the mail and runs internal services, ``dovenull`` runs the login
        processes.  As an ordinary user everything runs as that user.
        """
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid()).pw_name
            return me, me, me
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise RuntimeError(f"system user {user!r} is missing: {INSTALL_HINT}") from None
        return "dovecot", "dovenull", "dovecot"

    def start(self) -> None:
        """Start Dovecot and wait for its ``* OK`` greeting."""
        if self._proc is not None:
            raise RuntimeError("Dovecot is already running")
        began = time.monotonic()
        stderr = (self.directory / "stderr.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_file), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own process group, so stop() reaches every child
            )
        finally:
            stderr.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"dovecot exited with code {self._proc.returncode} during startup\n"
                    + self._logs()
                )
            try:
                if self._greeting().startswith(b"* OK"):
                    return
                last_error = "unexpected greeting"
            except OSError as exc:
                last_error = repr(exc)
            time.sleep(0.02)
        raise RuntimeError(
            f"dovecot did not greet on {self.host}:{self.port} within {self.startup_timeout} s "
            f"(last error: {last_error})\n" + self._logs()
        )

    def _greeting(self) -> bytes:
        with socket.create_connection((self.host, self.port), timeout=2) as raw:
            if not self.tls:
                return raw.makefile("rb").readline()
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            with ctx.wrap_socket(raw, server_hostname=self.host) as wrapped:
                return wrapped.makefile("rb").readline()

    def _logs(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.directory / name
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            parts.append(f"--- {path} ---\n{text[-8000:]}")
        return "\n".join(parts)

    def logs(self) -> str:
        """Dovecot's log and stderr so far, for assertion messages."""
        return self._logs()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot and every process it started; open IMAP connections drop.  Mail stays.

        SIGTERM goes to the whole process group: sent to the master alone, Dovecot spends about
        a second waiting for its children, which would make a per-test server slow.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Children that ignored SIGTERM would be left behind in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def new_uidvalidity(self) -> None:
        """Make Dovecot forget its UIDs: a new UIDVALIDITY for the same mailbox and mails."""
        with self.client() as client:
            before = client.select_folder("INBOX")[b"UIDVALIDITY"]
            client.logout()
        self.stop()
        for index in self.maildir.glob("dovecot*"):
            index.unlink()
        time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock, in seconds
        self.start()
        with self.client() as client:
            assert client.select_folder("INBOX")[b"UIDVALIDITY"] != before
            client.logout()

    def restart(self) -> None:
        """Stop and start again on the same port; the mail stays."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- client helpers ---------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (tls=True only)."""
        if not self.tls or self.ca_file is None:
            raise RuntimeError("this Dovecot runs without TLS")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, timeout: float = 10.0) -> IMAPClient:
        """A logged-in IMAPClient; the caller logs out (or uses it as a context manager).

        ``normalise_times`` is off, so INTERNALDATEs come back timezone-aware as the server sent
        them instead of as naive local times.
        """
        if self.tls:
            imap = IMAPClient(
                self.host, self.port, ssl=True, ssl_context=self.ssl_context(), timeout=timeout
            )
        else:
            imap = IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
        imap.normalise_times = False
        try:
            imap.login(self.username, self.password)
        except BaseException:
            with contextlib.suppress(Exception):
                imap.shutdown()
            raise
        return imap

    def append(
        self,
        raw: bytes,
        when: datetime,
        folder: str = "INBOX",
        flags: Iterable[str | bytes] = (),
    ) -> int | None:
        """APPEND *raw* to *folder* with INTERNALDATE *when*; return the new UID (APPENDUID).

        *when* must be timezone-aware: a naive datetime would be sent in the machine's local zone
        and make tests depend on TZ.  *folder* is created if it does not exist.
        """
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("append() needs a timezone-aware datetime for INTERNALDATE")
        with self.client() as imap:
            if folder.upper() != "INBOX" and not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, raw, flags=tuple(flags), msg_time=when)
            imap.logout()
        text = response.decode() if isinstance(response, bytes) else str(response)
        match = re.search(r"\[APPENDUID \d+ (\d+)\]", text)
        return int(match.group(1)) if match else None

    def append_many(self, mails: Iterable[tuple[bytes, datetime]], folder: str = "INBOX") -> int:
        """APPEND many mails over one connection (each with its INTERNALDATE); returns how many."""
        count = 0
        with self.client() as imap:
            for raw, when in mails:
                if when.tzinfo is None or when.utcoffset() is None:
                    raise ValueError("append_many() needs timezone-aware datetimes")
                imap.append(folder, raw, msg_time=when)
                count += 1
            imap.logout()
        return count

    def message_ids(self, folder: str = "INBOX") -> dict[int, str | None]:
        """``{uid: Message-ID header}`` for every message in *folder* (read-only, no \\Seen)."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            items = [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
            fetched = imap.fetch(uids, items) if uids else {}
            imap.logout()
        key = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        return {int(uid): _header(bytes(data[key]), b"message-id") for uid, data in fetched.items()}

    def delete_folder(self, folder: str) -> None:
        """Delete *folder* (and unsubscribe it), as an admin or another client might."""
        with self.client() as imap:
            with contextlib.suppress(IMAPClient.Error):
                imap.unsubscribe_folder(folder)
            imap.delete_folder(folder)
            imap.logout()

    def folders(self) -> list[str]:
        """Names of all folders, INBOX included."""
        with self.client() as imap:
            names = [name for _flags, _sep, name in imap.list_folders()]
            imap.logout()
        return names

    def folder_uids(self, folder: str = "INBOX") -> list[int]:
        """UIDs in *folder*, ascending (read-only SELECT: no flag changes)."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in imap.search("ALL"))
            imap.logout()
        return uids

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """``{uid: {"\\Seen", ...}}`` for every message in *folder* (flags as str).

        ``\\Recent`` is left out: it is per-session noise (whoever looks first sees it).
        """
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            fetched = imap.fetch(uids, ["FLAGS"]) if uids else {}
            imap.logout()
        return {
            int(uid): {
                text
                for f in data[b"FLAGS"]
                if (text := f.decode() if isinstance(f, bytes) else str(f)) != "\\Recent"
            }
            for uid, data in fetched.items()
        }

    def reset(self) -> None:
        """Empty the account: delete every folder but INBOX and expunge INBOX.

        For a server shared between tests.  UIDs are not reset (UIDNEXT only grows), so tests
        must use the UIDs they get from ``append()`` instead of assuming 1, 2, 3.
        """
        with self.client() as imap:
            for _round in range(10):  # a parent may only go away once its children are gone
                others = [
                    (flags, str(name))
                    for flags, _sep, name in imap.list_folders()
                    if str(name).upper() != "INBOX" and b"\\NonExistent" not in flags
                ]
                if not others:
                    break
                # Children before parents.
                for flags, name in sorted(others, key=lambda o: o[1].count("/"), reverse=True):
                    with contextlib.suppress(IMAPClient.Error):
                        imap.unsubscribe_folder(name)
                    try:
                        imap.delete_folder(name)
                    except IMAPClient.Error:
                        if b"\\Noselect" not in flags:  # a \Noselect parent may vanish on its own
                            raise
            else:
                raise RuntimeError(f"reset() could not delete folders: {imap.list_folders()}")
            imap.select_folder("INBOX")
            uids = imap.search("ALL")
            if uids:
                imap.delete_messages(uids)
                imap.expunge()
            imap.close_folder()
            imap.logout()


# --------------------------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------------------------

Stage = Literal["MAIL", "RCPT", "DATA", "DATA command"]


class _Server(SMTP):
    """aiosmtpd's server, which can also refuse the DATA command itself (stage "DATA
    command"): its handler hooks only see DATA once the message has arrived."""

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and not arg:
            failure = self.event_handler._sink._take_failure("DATA command")
            if failure:
                await self.push(failure)
                return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)


@dataclass(frozen=True)
class Received:
    """One message as the sink got it: the SMTP envelope and the raw DATA bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None = None  # the AUTH user, if the client authenticated
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters (SIZE=…)
    at: float = field(default_factory=time.monotonic)  # when the sink accepted it (monotonic)

    @property
    def message_id(self) -> str | None:
        """The Message-ID header of the message as sent (None if it has none)."""
        return _header(self.data, b"message-id")

    def headers(self) -> list[tuple[str, str]]:
        """Every header (name, raw unfolded value) of the message, in order, as sent."""
        head = self.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
        unfolded = re.sub(rb"\n[ \t]+", b" ", head)
        pairs = []
        for line in unfolded.split(b"\n"):
            name, _, value = line.partition(b":")
            pairs.append(
                (name.decode("ascii", "replace"), value.strip().decode("utf-8", "replace"))
            )
        return pairs


def _header(data: bytes, name: bytes) -> str | None:
    """The first header *name* (lower case) in raw mail *data*, unfolded; None if absent."""
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    match = re.search(rb"(?im)^" + re.escape(name) + rb":[ \t]*(.*(?:\n[ \t].*)*)", head)
    if match is None:
        return None
    return re.sub(rb"\n[ \t]+", b" ", match.group(1)).strip().decode("utf-8", "replace")


class _Handler:
    """aiosmtpd handler that records messages and can answer errors on request."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._sink.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        failure = self._sink._take_failure("MAIL")
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self._sink._take_failure("RCPT")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._sink._take_failure("DATA")
        if failure:
            return failure
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        self._sink._record(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                login=login,
                mail_options=list(envelope.mail_options),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 and a free port that keeps every message it accepts.

    With *username* and *password* it offers AUTH PLAIN/LOGIN without TLS and, unless
    ``require_auth=False``, refuses mail from unauthenticated clients.  ``fail_next()`` makes it
    answer an error for the next messages, for retry and bounce tests.
    """

    host: str = "127.0.0.1"

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        require_auth: bool | None = None,
        port: int | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.username = username
        self.password = password
        self.port = port if port is not None else free_port(self.host)
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._failures: list[tuple[Stage, str]] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, accepted)
        # The sink enforces require_auth itself at MAIL FROM: aiosmtpd's own auth_required
        # warns on every connection when TLS is not required as well.
        self.require_auth = username is not None if require_auth is None else require_auth
        kwargs: dict[str, Any] = {}
        if username is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10.0, **kwargs
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, RuntimeError):  # not started / already stopped
            self._controller.stop()

    # -- recording --------------------------------------------------------------------------

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)
            self._lock.notify_all()

    @property
    def received(self) -> list[Received]:
        """A copy of the messages accepted so far, oldest first."""
        with self._lock:
            return list(self._received)

    def __len__(self) -> int:
        with self._lock:
            return len(self._received)

    def message(self, i: int = -1) -> EmailMessage:
        """Message *i* (default: the last) parsed with ``email.policy.default``.

        Line ends are turned from SMTP's CRLF into ``\\n`` first, so ``get_content()`` reads as
        the text the sender put in; ``received[i].data`` keeps the bytes as they came.
        """
        data = self.received[i].data.replace(b"\r\n", b"\n")
        return cast(EmailMessage, BytesParser(policy=email.policy.default).parsebytes(data))

    def messages(self) -> list[EmailMessage]:
        return [self.message(i) for i in range(len(self))]

    def message_ids(self) -> list[str | None]:
        """The Message-ID of every accepted message, in order: duplicates show up twice."""
        return [item.message_id for item in self.received]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least *count* messages arrived; return them (TimeoutError if not)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"expected {count} messages, got {len(self._received)}")
            return list(self._received)

    def clear(self) -> None:
        """Forget received messages and pending failures."""
        with self._lock:
            self._received.clear()
            self._failures.clear()
            self.auth_attempts.clear()

    # -- fault injection --------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, code: int = 451, text: str = "try later", stage: Stage = "DATA"
    ) -> None:
        """Answer ``code text`` instead of accepting, for the next *n* commands of *stage*.

        ``stage="DATA"`` (default) fails whole messages after the envelope was accepted;
        ``"MAIL"`` fails at MAIL FROM; ``"RCPT"`` fails the next *n* RCPT TO commands, i.e.
        recipients; ``"DATA command"`` answers the DATA command itself instead of 354.  A 4xx
        code is a temporary failure, 5xx permanent.  Failures queue up in order and are
        consumed by the first matching command.
        """
        if not 400 <= code <= 599:
            raise ValueError("code must be an SMTP error code (4xx or 5xx)")
        with self._lock:
            self._failures.extend([(stage, f"{code} {text}")] * n)

    def _take_failure(self, stage: Stage) -> str | None:
        with self._lock:
            for i, (failing_stage, reply) in enumerate(self._failures):
                if failing_stage == stage:
                    del self._failures[i]
                    return reply
            return None

    def pending_failures(self) -> Sequence[tuple[Stage, str]]:
        with self._lock:
            return list(self._failures)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = login == self.username and password == self.password
        with self._lock:
            self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
