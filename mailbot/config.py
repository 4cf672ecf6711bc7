"""Load and validate `config.toml` into typed settings, once, at the edge.

Admins edit the file by hand, so every mistake must come back as one line that names the key
and says how to fix it (`ConfigError`), never as a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path("config.toml")
IMAP_PASSWORD_ENV = "MAILBOT_IMAP_PASSWORD"
SMTP_PASSWORD_ENV = "MAILBOT_SMTP_PASSWORD"


class ConfigError(Exception):
    """A config problem explained for a human: which key, what is wrong, how to fix it."""


def redacted(exc: BaseException, secret: str | None) -> str:
    """An error's text without the password, should a server ever echo it back."""
    text = str(exc) or exc.__class__.__name__
    return text.replace(secret, "***") if secret else text


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "needs a time zone offset, e.g. 2018-02-09T23:59:59+01:00 (a bare date-time is ambiguous)"
        )
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


def _sendable(value: str) -> str:
    """An address of ours as replies need it: a plain ASCII addr-spec, the check every
    recipient of a reply passes (`mailbot.reply.wire.safe_address`).

    Such an address goes into headers and the SMTP envelope as it is (the organiser's is
    the envelope sender of every mail), and the mail library cannot encode one with an
    umlaut: once queued, a reply to it stopped the whole send pass, so it must fail here,
    where the admin sees it. A domain with umlauts has an ASCII form that works: named.
    """
    from mailbot.reply.wire import safe_address  # not at the top: mailbot.reply imports us

    if safe_address(value):
        return value
    local, at, domain = value.rpartition("@")
    if at and local.isascii() and not domain.isascii():
        try:
            ascii_form = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            ascii_form = ""
        if safe_address(ascii_form):
            raise ValueError(
                f"{value!r}: mailbot sends only to ASCII addresses; write the domain in its "
                f"ASCII form: {ascii_form!r}"
            )
    if not value.isascii():
        raise ValueError(
            f"{value!r}: mailbot sends only to ASCII addresses (no umlauts before the @); "
            "use an address like anmeldung@example.org"
        )
    raise ValueError(f"{value!r} is not a plain e-mail address like anmeldung@example.org")


# Every address in [organiser], checked alike: most are written into mail or sent to.
Address = Annotated[str, AfterValidator(_sendable)]

Security = Literal["ssl", "starttls", "none"]


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1 — the only places plain text is acceptable."""
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    # Unknown keys are typos more often than not: reject them with their name.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Server(_Strict):
    host: str
    port: int = Field(gt=0, lt=65536, strict=True)
    security: Security = "ssl"
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> _Server:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                f'security = "none" sends the password in clear text and is only allowed for a '
                f'loopback host (127.0.0.1, localhost), not {self.host!r}; use "ssl" or "starttls"'
            )
        return self


class ImapSettings(_Server):
    username: str
    password: str | None = None
    folder: str = "INBOX"
    processed_folder: str = "INBOX/Processed"
    review_folder: str = "INBOX/Review"
    batch_size: int = Field(default=50, gt=0, le=1000)
    idle: bool = True  # IMAP IDLE where the server offers it; polling stays as the fallback
    max_message_bytes: int = Field(default=25_000_000, gt=0)  # larger mail goes to review unread


class SmtpSettings(_Server):
    username: str | None = None
    password: str | None = None


class DatabaseSettings(_Strict):
    url: str = "sqlite:///mailbot.sqlite3"

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            # SQLAlchemy reads every such string as a file name (tests/test_config.py): no
            # need to import it (0.2 s) before `poll --once` has forked its read-ahead.
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError:
            raise ValueError(
                f'{value!r} is not a database URL; use e.g. "sqlite:///mailbot.sqlite3" or '
                '"postgresql+psycopg://user@host/mailbot"'
            ) from None
        return value


class MailbotSettings(_Strict):
    poll_seconds: int = Field(default=60, ge=5)
    timezone: str = "Europe/Berlin"
    late_policy: Literal["reject", "waitlist"] = "reject"
    max_attempts: int = Field(default=3, ge=1, le=20)
    # Loop brakes: no address gets more than this many replies a day (Mailman's figure is 10),
    # and sending pauses, with an alert, once this many went out in an hour.
    max_replies_per_address_per_day: int = Field(default=10, ge=1)
    max_replies_per_hour: int = Field(default=5000, ge=1)
    # A backlog of more than one batch (a rush) gets two helper processes: one parses the
    # next batch ahead, one sends replies while the backlog is still read. Off: one process,
    # and replies leave after the whole backlog.
    parallel_backlog: bool = True
    templates: str | None = None  # a folder relative to this file; None: the built-in ones
    default_language: Literal["de", "en"] = "de"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone {value!r}; use an IANA name such as "Europe/Berlin"'
            ) from None
        return value


class OrganiserSettings(_Strict):
    name: str
    address: Address  # the From of every mail and the SMTP envelope sender
    digest_to: list[Address] = Field(default_factory=list)
    reply_to: Address | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    other_addresses: list[Address] = Field(default_factory=list)

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


class DigestSettings(_Strict):
    """The organisers' daily summary: when it goes out, and whether quiet days are skipped."""

    time: str = Field(default="07:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    skip_when_quiet: bool = False

    @property
    def hour(self) -> int:
        return int(self.time[:2])

    @property
    def minute(self) -> int:
        return int(self.time[3:])


class PrivacySettings(_Strict):
    """How long personal data is kept after an event has ended (GDPR storage limitation)."""

    retention_days: int = Field(default=180, ge=1)


class VenueSettings(_Strict):
    name: str = ""
    address: str = ""
    directions_transit: str = ""
    directions_walk: str = ""
    directions_car: str = ""


class EventSettings(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    number: int = Field(ge=1)
    title: str
    start: AwareDatetime
    end: AwareDatetime
    deadline: AwareDatetime
    capacity: int = Field(ge=0, strict=True)
    placeholder: bool = False
    fee: str = "kostenlos"
    lunch: bool = True
    programme: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _times_in_order(self) -> EventSettings:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.deadline > self.end:
            raise ValueError("deadline must not be after the end of the event")
        return self


class Config(_Strict):
    imap: ImapSettings
    smtp: SmtpSettings
    database: DatabaseSettings = DatabaseSettings()
    mailbot: MailbotSettings = MailbotSettings()
    organiser: OrganiserSettings
    digest: DigestSettings = DigestSettings()
    privacy: PrivacySettings = PrivacySettings()
    venue: VenueSettings = VenueSettings()
    events: list[EventSettings] = Field(min_length=1)
    source_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_events(self) -> Config:
        for attr in ("id", "number"):
            seen: set[object] = set()
            for event in self.events:
                value = getattr(event, attr)
                if value in seen:
                    raise ValueError(f"two events share the {attr} {value!r}; each needs its own")
                seen.add(value)
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.mailbot.timezone)

    def event_by_number(self, number: int) -> EventSettings | None:
        return next((e for e in self.events if e.number == number), None)

    def event_by_id(self, event_id: str) -> EventSettings | None:
        return next((e for e in self.events if e.id == event_id), None)

    @property
    def current_event(self) -> EventSettings:
        """The event to show when no time is given (previews, `mailbot parse`): the first real
        (non-placeholder) one."""
        return self.current_event_at(None)

    def current_event_at(self, moment: datetime | None) -> EventSettings:
        """The event a mail means when it names none, by when it arrived: the first real
        (non-placeholder) event that had not ended by then.

        In a series, "ich melde mich an" written after the 2nd workshop is over means the
        next one, not a late registration for the one that is past. Before an event ends it
        stays the one meant, even past its deadline: that mail gets "deadline passed", not a
        seat at a later workshop nobody asked for. After the last real event it is still the
        last one, whose answer says the deadline has passed.
        """
        real = sorted((e for e in self.events if not e.placeholder), key=lambda e: e.start)
        if not real:
            return min(self.events, key=lambda e: e.start)
        if moment is None:
            return real[0]
        return next((e for e in real if e.end > moment), real[-1])

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config (templates, SQLite file) are relative to the file."""
        return self.source_path.parent if self.source_path else Path.cwd()

    @property
    def templates_dir(self) -> Path:
        if self.mailbot.templates is None:
            from mailbot.reply.render import default_templates_dir

            return default_templates_dir()
        return (self.base_dir / self.mailbot.templates).resolve()

    @property
    def database_url(self) -> str:
        """The URL with a relative SQLite path anchored at the config file, not at the cwd
        (cron starts in $HOME, and a fresh empty database would forget every seat)."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database.url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            path = Path(url.database)
            if not path.is_absolute():
                return str(url.set(database=str((self.base_dir / path).resolve())))
        return self.database.url

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses that are us: never answered, so two bots cannot talk to each other."""
        found = {self.organiser.address, *self.organiser.other_addresses, *self.organiser.digest_to}
        if self.organiser.reply_to:
            found.add(self.organiser.reply_to)
        if "@" in self.imap.username:
            found.add(self.imap.username)
        return frozenset(a.lower() for a in found)


def _location(parts: tuple[object, ...], data: dict[str, object]) -> str:
    """`events[1] (werkstatt-2).deadline`: the index alone is easy to miscount."""
    text = ""
    node: object = data
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                text += f" ({item['id']})"
            node = item
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text


def _describe(error: dict[str, object], data: dict[str, object]) -> str:
    location = _location(tuple(error["loc"]), data)  # type: ignore[arg-type]
    kind = error.get("type")
    message = str(error.get("msg", "is invalid"))
    if kind == "missing":
        return f"{location}: missing; add it to config.toml"
    if kind == "extra_forbidden":
        return f"{location}: unknown key; check the spelling or remove it"
    message = message.removeprefix("Value error, ")
    return f"{location}: {message}"


def parse_config(data: dict[str, object], source: Path | None = None) -> Config:
    """Validate an already-read TOML document, filling passwords from the environment."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, env in (("imap", IMAP_PASSWORD_ENV), ("smtp", SMTP_PASSWORD_ENV)):
        table = data.get(section)
        if isinstance(table, dict) and os.environ.get(env):
            table["password"] = os.environ[env]
    try:
        config = Config.model_validate({**data, "source_path": source})
    except ValidationError as exc:
        problems = "; ".join(_describe(e, data) for e in exc.errors())  # type: ignore[arg-type]
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}{problems}") from None
    if config.imap.password is None:
        raise ConfigError(
            f"{source or 'config'}: imap.password: missing; set it in the file or in the "
            f"environment variable {IMAP_PASSWORD_ENV}"
        )
    if config.mailbot.templates is not None and not config.templates_dir.is_dir():
        raise ConfigError(
            f"{source or 'config'}: mailbot.templates: folder {config.templates_dir} does not "
            "exist; copy the templates/ folder there, or remove the key to use the built-in templates"
        )
    if (config.smtp.username is None) != (config.smtp.password is None):
        raise ConfigError(
            f"{source or 'config'}: smtp.username and smtp.password go together: set both for "
            f"SMTP AUTH (the password may come from {SMTP_PASSWORD_ENV}) or neither"
        )
    return config


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; pass --config PATH or copy the example config.toml here"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path.resolve())
