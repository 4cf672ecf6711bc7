"""The plain data records that flow between the stages: what a mail says, and what we decided.

Every stage (parse, decide, store, reply) speaks in these types, so each stage can be
tested with values built by hand and no server in sight.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Intent(StrEnum):
    """What the sender wants. Fixed vocabulary shared with the labelled corpora."""

    REGISTER = "register"
    CANCEL = "cancel"
    UPDATE = "update"
    QUESTION = "question"
    AUTOREPLY = "autoreply"
    BOUNCE = "bounce"
    OTHER = "other"


class Role(StrEnum):
    SPEAKER = "speaker"
    PARTICIPANT = "participant"


class Participant(BaseModel):
    """One person named in a mail. The e-mail is lower-cased; the name carries no titles."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    email: str
    organisation: str | None = None


class MailHeaders(BaseModel):
    """The header facts later stages need (threading, loop protection, logging)."""

    model_config = ConfigDict(frozen=True)

    message_id: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    return_path: str | None = None
    reply_to: str | None = None
    subject: str = ""
    date: datetime | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    no_reply_reason: str | None = Field(
        default=None,
        description="Why this mail must never be answered (RFC 3834 and friends), or None.",
    )


class ParsedMail(BaseModel):
    """The parser's reading of one mail. The first nine fields are the `mailbot parse --json` contract."""

    intent: Intent
    language: str = "de"
    events: list[int] = Field(default_factory=list)
    participants: list[Participant] = Field(default_factory=list)
    lunch: bool | None = None
    role: Role | None = None
    notes: str | None = None
    needs_review: str | None = Field(
        default=None, description="Short reason why a human should look at this mail, or None."
    )
    headers: MailHeaders = Field(default_factory=MailHeaders)
    bounced_addresses: list[str] = Field(default_factory=list)
    attachments: list[str] = Field(
        default_factory=list,
        description="Attachments that were not read (file names), so a human can look at them.",
    )

    def contract_dict(self, file: str) -> dict[str, object]:
        """The JSON object `mailbot parse --json` prints: exactly the agreed keys."""
        return {
            "file": file,
            "intent": self.intent.value,
            "language": self.language,
            "events": list(self.events),
            "participants": [p.model_dump() for p in self.participants],
            "lunch": self.lunch,
            "role": self.role.value if self.role else None,
            "notes": self.notes,
            "needs_review": self.needs_review,
        }
