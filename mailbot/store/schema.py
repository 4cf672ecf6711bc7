"""The database tables, in SQLAlchemy Core, so SQLite (default) and PostgreSQL share one schema.

Times are stored as UTC (`UtcDateTime`): SQLite has no time zone type, and a deadline
compared against a naive local time is exactly the bug this project must not have.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive values are refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

# Where we are in each mailbox: UIDs are only meaningful together with UIDVALIDITY.
mailbox_state = Table(
    "mailbox_state",
    metadata,
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False, default=0),
    Column("last_poll_at", UtcDateTime),
)

# Every mail we have looked at, with what we made of it. One row per mail, ever.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("folder", String(255), nullable=False),
    # IMAP UIDs are unsigned 32-bit: more than PostgreSQL's int4 holds.
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("dedupe_key", String(512), nullable=False, unique=True),
    Column("message_id", String(998)),
    Column("arrival", UtcDateTime, nullable=False),
    Column("sender", String(320)),
    Column("subject", Text),
    Column("intent", String(20)),
    Column("language", String(5)),
    # done: handled and answered (or rightly not answered); review: a human must look;
    # ignored: not about the events, left in the inbox; failed: an error, will be retried.
    Column("state", String(20), nullable=False),
    Column("outcome", Text),
    Column("reason", Text),
    Column("parsed_json", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("moved", Boolean, nullable=False, default=False),
    # Set when an organiser settled a mail in review (`mailbot review`), with what was done.
    Column("resolved_at", UtcDateTime),
    Column("resolution", Text),
    # For registrations an organiser forwarded: who forwarded it.
    Column("forwarded_by", String(320)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("folder", "uidvalidity", "uid", name="uq_messages_uid"),
)

participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(255)),
    Column("organisation", String(255)),
    Column("language", String(5), nullable=False, default="de"),
    # Last time a mail to this address bounced (shown to organisers in the digest).
    Column("bounced_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
)

# One row per person and event. Status: confirmed, waitlisted, cancelled, late.
registrations = Table(
    "registrations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("participant_id", ForeignKey("participants.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    # Queue order: the arrival time of the mail that put the person on the list.
    Column("arrival", UtcDateTime, nullable=False),
    Column("lunch", Boolean),
    Column("role", String(20)),
    Column("notes", Text),
    Column("message_row", ForeignKey("messages.id")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("participant_id", "event_id", name="uq_registration"),
)
Index("ix_registrations_event_status", registrations.c.event_id, registrations.c.status)

# Replies waiting to be sent. `key` makes "one reply per mail and purpose" a database fact.
# The bytes of each reply are in `outbox_bodies`.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("message_row", ForeignKey("messages.id")),
    Column("purpose", String(40), nullable=False),
    Column("recipients", Text, nullable=False),
    Column("message_id", String(998), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("failed_at", UtcDateTime),
    Column("last_error", Text),
    # A sender claims an entry before handing it to SMTP, so two senders (the worker and an
    # admin command, or a second worker) never send the same reply at the same time.
    Column("claimed_by", String(100)),
    Column("claimed_until", UtcDateTime),
)
Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.failed_at, outbox.c.next_attempt_at)

# The bytes of each reply, written once, read when it is sent. Apart from the outbox row: a
# sender claims each row and marks it sent, and SQLite writes a whole row anew for every
# UPDATE. With the 8.6 KiB of a reply in the row, every reply was written three times, and
# the sender spent 0.66 s between 2,000 replies instead of 0.46 s (schema version 2;
# bench/sender.py). Deleting an outbox row deletes its bytes.
outbox_bodies = Table(
    "outbox_bodies",
    metadata,
    Column("outbox_id", ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
    Column("raw", LargeBinary, nullable=False),
)

# One row per recipient of each reply to participants: what the per-address loop brake
# (mailbot.max_replies_per_address_per_day) counts. Counting in the outbox itself meant a
# LIKE over every recent reply (and its message body) per mail, O(N²) in a rush. Only a hash
# of the address is kept, and rows older than two days are purged with the retention job.
reply_log = Table(
    "reply_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_reply_log_address", reply_log.c.address_hash, reply_log.c.created_at)

# One row per local calendar day on which a digest was made (or skipped as quiet):
# the primary key is what makes "exactly one digest per day" hold across restarts.
digests = Table(
    "digests",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("skipped", Boolean, nullable=False, default=False),
    Column("outbox_key", String(255)),
)

# What admins did to personal data (forget, purge): kept without the personal data itself.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("action", String(40), nullable=False),
    Column("detail", Text, nullable=False),
)

# Anonymous counts that survive erasure: how many registrations an event had.
anonymous_counts = Table(
    "anonymous_counts",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)

# Who may work on the mailbox now: one row per lock name, held until `expires_at`.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# The worker's last known state for `mailbot status` and the digest: last poll, last error.
health = Table(
    "health",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# How often the seats changed: bumped by SQLite triggers (store/db.py) on every write to
# registrations and participants, by whatever code or tool makes it. A poll that finds the
# number unchanged since its own last batch reuses its in-memory seats instead of reading all
# of them again (O(N) per batch, O(N²) for a rush; 0.45 s per batch at 20,000 seats).
change_counters = Table(
    "change_counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Integer, nullable=False),
)

schema_info = Table(
    "schema_info",
    metadata,
    Column("version", Integer, primary_key=True),
)
SCHEMA_VERSION = 2
