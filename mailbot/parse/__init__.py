"""Read one raw mail into a `ParsedMail`: the parser stage of mailbot.

`parse_mail` is a pure function from bytes to a record: no I/O, no global state, and it never
raises, because one hostile or broken message must not stop the inbox loop. When it cannot
be sure, it says so in `needs_review` instead of guessing silently. Machine mail (bounces,
auto-replies, lists) is recognised from headers first; only human mail is read for intent.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC
from email.message import Message
from email.utils import parsedate_to_datetime

from mailbot.models import Intent, MailHeaders, ParsedMail, Participant
from mailbot.parse import details, events, fields, machine, participants, people
from mailbot.parse.attachments import attached_mails, attachment_names
from mailbot.parse.autoreply import auto_reply_reason, is_bounce
from mailbot.parse.language import language
from mailbot.parse.machine import bounced_addresses
from mailbot.parse.mime import (
    MAX_DEPTH,
    addresses,
    body_text,
    header,
    parse_bytes,
    too_deep,
)
from mailbot.parse.mime import return_path as return_path_of
from mailbot.parse.phrases import Phrases
from mailbot.parse.quotes import body_without_signature, split_quoted

__all__ = ["auto_reply_reason", "bounced_addresses", "is_bounce", "parse_mail"]

MAX_OWN_CHARS = 30_000  # a registration is short; more text only costs time
MAX_SPLIT_CHARS = 60_000  # own words (30k) and a forwarded part (20k) lie within this
MAX_FORWARD_DEPTH = 3  # a forward of a forward of a forward is read; deeper nesting is not
ACTIONABLE = (Intent.REGISTER, Intent.CANCEL, Intent.UPDATE)
_FORWARD_WORDS = Phrases(
    r"weiterleit|leite\w*\s+(?:\w+\s+){0,8}?weiter\b|\bforward|\banbei\b|\bim\s+anhang\b|"
    r"\battached\b|\bbeigefügt",
)
_POINTS_TO_ATTACHMENT = re.compile(
    r"\banbei\b|\bim\s+anhang\b|\battached\b|\battachment\b|\bbeigefügt|\bformular\b|\bform\b",
    re.IGNORECASE,
)


def parse_mail(
    raw: bytes,
    *,
    default_event: int = 2,
    known_events: Collection[int] = (1, 2, 3, 4),
    own_addresses: Collection[str] = (),
) -> ParsedMail:
    """Parse one raw RFC 5322 message. Never raises; see `ParsedMail.needs_review`.

    `own_addresses` are mailbot's and the organisers' addresses (from the config): mail from
    them, or carrying an X-Loop that names them, is never answered.
    """
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        data = bytes(raw)
        known = tuple(sorted({int(e) for e in known_events}))
        own = frozenset(a.lower() for a in own_addresses)
        return _read(parse_bytes(data), int(default_event), known, depth=0, own=own)
    except Exception as exc:
        return ParsedMail(intent=Intent.OTHER, needs_review=f"parser error: {type(exc).__name__}")


def _headers(msg: Message, reason: str | None) -> MailHeaders:
    sender = addresses(msg, "From")
    reply_to = addresses(msg, "Reply-To")
    rp_raw = return_path_of(msg)
    if rp_raw is None:
        return_path = None
    elif re.fullmatch(r"\s*<\s*>\s*", rp_raw):
        return_path = ""
    else:
        match = people.EMAIL_RE.search(rp_raw)
        return_path = match.group(0).lower() if match else rp_raw.strip("<> ") or None
    try:
        date = parsedate_to_datetime(header(msg, "Date"))
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
    except Exception:
        date = None
    in_reply_to = re.findall(r"<[^<>\s]+>", header(msg, "In-Reply-To"))
    references = re.findall(r"<[^<>\s]+>", header(msg, "References"))[-100:]
    return MailHeaders(
        message_id=header(msg, "Message-ID")[:998] or None,
        from_address=sender[0][1] if sender else None,
        from_name=(sender[0][0] or None) if sender else None,
        return_path=return_path,
        reply_to=reply_to[0][1] if reply_to else None,
        subject=header(msg, "Subject")[:2000],
        date=date,
        in_reply_to=in_reply_to[0] if in_reply_to else (header(msg, "In-Reply-To") or None),
        references=tuple(references),
        no_reply_reason=reason,
    )


def _read(
    msg: Message,
    default_event: int,
    known: tuple[int, ...],
    depth: int,
    own: frozenset[str] = frozenset(),
) -> ParsedMail:
    reason = auto_reply_reason(msg, own)
    hdrs = _headers(msg, reason)
    body = body_text(msg)
    review: list[str] = list(body.problems)
    subject = hdrs.subject
    if not body.text.strip():
        # Nothing to read: say why, so the mail goes to a human instead of being ignored.
        if too_deep(msg):
            review.insert(0, f"unreadable: MIME nested deeper than {MAX_DEPTH} levels")
        elif names := attachment_names(msg):
            review.insert(0, f"unreadable: no text, only attachments ({', '.join(names[:3])})")
    if not body.text.strip() and not subject.strip() and not msg.keys():
        return ParsedMail(intent=Intent.OTHER, headers=hdrs, needs_review="empty message")

    intent = machine.machine_intent(msg, subject, body.text, reason)
    # Machine mail is only read for its language: a short prefix is enough for that.
    split = split_quoted(body.text[: MAX_SPLIT_CHARS if intent is None else 5000])
    own = split.own[:MAX_OWN_CHARS]
    if intent is None and machine.human_autoreply(own):
        intent = Intent.AUTOREPLY
    if intent is not None:
        bounced = bounced_addresses(msg) if intent == Intent.BOUNCE else []
        return ParsedMail(
            intent=intent,
            language=language(own or subject),
            headers=hdrs,
            bounced_addresses=bounced,
            needs_review="; ".join(review) or None,
        )

    text = body_without_signature(own, split.signature)
    form = people.form_people(own)
    has_form = any("name" in f and "email" in f for f in form)
    intent, why = fields.classify(text, subject, has_form)
    if (
        intent == Intent.OTHER
        and split.quoted.strip()
        and re.match(r"\s*(wg|fw|fwd)\s*:", subject, re.I)
    ):
        fwd_intent, _ = fields.classify(split.quoted[:20_000], "")
        if fwd_intent != Intent.OTHER:
            intent, why = fwd_intent, "forwarded mail, read from the forwarded part"
            own = split.quoted[:20_000]
            text = own
    forwarded = _forwarded(msg, text, subject, intent, default_event, known, depth)
    if forwarded is not None:
        forwarded.headers = hdrs
        return forwarded
    if why:
        review.append(why)
    result = ParsedMail(
        intent=intent,
        language=language(own or subject),
        events=events.events(text, subject, intent, default_event, known),
        headers=hdrs,
        attachments=attachment_names(msg),
    )
    if intent in ACTIONABLE:
        found, form0 = participants.find(msg, own, split.signature, review)
        result.participants = [
            Participant(name=p.name, email=p.email or "", organisation=p.org) for p in found
        ]
        if intent != Intent.CANCEL:
            result.lunch = details.lunch(text, form0.get("lunch"))
            result.role = details.role(text, form0.get("role"))
            result.notes = details.notes(
                text, [form0.get("notes", "")], [p.name or "" for p in found]
            )
        if result.attachments and not has_form and _POINTS_TO_ATTACHMENT.search(text):
            review.append("details may be in an attachment that was not read")
    result.needs_review = "; ".join(dict.fromkeys(review)) or None
    return result


def _forwarded(
    msg: Message,
    text: str,
    subject: str,
    intent: Intent,
    default_event: int,
    known: tuple[int, ...],
    depth: int,
) -> ParsedMail | None:
    """The reading of a mail forwarded as an attachment, when that is what this mail is about.

    A secretary forwards the boss's own registration ("anbei leite ich … weiter"): the
    attached message names the participant, so its reading replaces the cover note's.
    """
    if depth >= MAX_FORWARD_DEPTH:
        return None
    if intent in ACTIONABLE and not (
        _FORWARD_WORDS.search(text) or re.match(r"\s*(wg|fw|fwd)\s*:", subject, re.I)
    ):
        return None
    organisers = {a for h in ("To", "Cc") for _, a in addresses(msg, h)}
    for inner in attached_mails(msg):
        if {a for _, a in addresses(inner, "From")} & organisers:
            continue  # our own invitation or confirmation, forwarded back to us
        result = _read(inner, default_event, known, depth + 1)
        if result.intent in ACTIONABLE:
            return result
    return None
