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
from mailbot.parse import details, fields, people
from mailbot.parse.autoreply import (
    BOUNCE_SUBJECT,
    auto_reply_reason,
    bounced_addresses,
    is_autoreply_subject,
    is_bounce,
    is_read_receipt,
)
from mailbot.parse.mime import addresses, body_text, header, parse_bytes
from mailbot.parse.quotes import body_without_signature, split_quoted

__all__ = ["auto_reply_reason", "bounced_addresses", "is_bounce", "parse_mail"]

_FREEMAIL = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "web.de",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "t-online.de",
        "yahoo.com",
        "yahoo.de",
        "hotmail.com",
        "hotmail.de",
        "outlook.com",
        "outlook.de",
        "live.com",
        "live.de",
        "icloud.com",
        "me.com",
        "aol.com",
        "freenet.de",
        "posteo.de",
        "mailbox.org",
        "arcor.de",
        "example.com",
        "example.net",
        "example.org",
    ]
)
_AUTOREPLY_BODY = re.compile(
    r"abwesend|nicht\s+im\s+büro|out\s+of\s+(?:the\s+)?office|im\s+urlaub|on\s+(?:annual\s+)?"
    r"leave|vacation|limited\s+access|eingeschränkt\w*\s+zugriff|nicht\s+erreichbar|"
    r"nicht\s+mehr\s+(?:bei|für|im|in)\b|no\s+longer\s+(?:with|work)|nicht\s+weitergeleitet|"
    r"automatisch\w*\s+(?:antwort|nachricht)|automatic\w*\s+(?:reply|generated|response)|"
    r"\bbin\s+bis\b|\buntil\b|travell?ing",
    re.IGNORECASE,
)
_BOUNCE_BODY = re.compile(
    r"could\s+not\s+be\s+delivered|undeliverable|delivery\s+(?:has\s+)?failed|nicht\s+zugestellt|"
    r"unzustellbar|user\s+unknown|mailbox\s+(?:is\s+)?(?:full|unavailable)|returned\s+to\s+sender|"
    r"permanent\s+(?:error|failure)|\b5\.\d\.\d+\b|delivery\s+status\s+notification|"
    r"failed\s+recipient|unknown\s+user|no\s+such\s+user|full\s+mailbox|invalid\s+user|"
    r"could\s+not\s+deliver|permanent\s+fatal|mailbox\s+unavailable|not\s+be\s+delivered|"
    r"delivery\s+to\s+the\s+following\s+recipients?\s+failed|recipient\s+address\s+rejected",
    re.IGNORECASE,
)
MAX_OWN_CHARS = 30_000  # a registration is short; more text only costs time
_LIST_REASON = re.compile(r"^(?:Precedence: (?:bulk|list|junk)|List-)", re.IGNORECASE)
_DAEMON_REASON = re.compile(r"is (?:mailer-daemon|mailer_daemon|post_?master)$", re.IGNORECASE)


def parse_mail(
    raw: bytes, *, default_event: int = 2, known_events: Collection[int] = (1, 2, 3, 4)
) -> ParsedMail:
    """Parse one raw RFC 5322 message. Never raises; see `ParsedMail.needs_review`."""
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        data = bytes(raw)
        known = tuple(sorted({int(e) for e in known_events}))
        return _parse(data, int(default_event), known)
    except Exception as exc:
        return ParsedMail(intent=Intent.OTHER, needs_review=f"parser error: {type(exc).__name__}")


def _headers(msg: Message, reason: str | None) -> MailHeaders:
    sender = addresses(msg, "From")
    reply_to = addresses(msg, "Reply-To")
    rp_raw = header(msg, "Return-Path")
    if msg.get("Return-Path") is None:
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


def _machine_intent(msg: Message, subject: str, text: str, reason: str | None) -> Intent | None:
    """Bounce/auto-reply/list decided from headers (and a glance at the text)."""
    if is_bounce(msg):
        return Intent.BOUNCE
    if is_read_receipt(msg) or is_autoreply_subject(subject):
        return Intent.AUTOREPLY
    if reason == "multipart/report":  # abuse reports and other machine reports
        return Intent.OTHER
    auto = header(msg, "Auto-Submitted").lower()
    precedence = header(msg, "Precedence").lower().strip()
    if (
        auto.startswith("auto-replied")
        or precedence == "auto_reply"
        or any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"))
        or msg.get("X-MS-Exchange-Inbox-Rules-Loop") is not None
    ):
        return Intent.BOUNCE if _BOUNCE_BODY.search(text[:5000]) and not auto else Intent.AUTOREPLY
    if reason and _DAEMON_REASON.search(reason):
        return Intent.BOUNCE
    if reason and re.match(r"(?:From|Return-Path|Sender) is ", reason):
        return Intent.OTHER  # list servers, list owners, no-reply senders: nobody to talk to
    if reason == "empty Return-Path" or (auto and auto != "no"):
        if _BOUNCE_BODY.search(text[:5000]):
            return Intent.BOUNCE
        if _AUTOREPLY_BODY.search(text[:5000]) or reason == "empty Return-Path":
            return Intent.AUTOREPLY
        return Intent.OTHER
    if reason and _LIST_REASON.search(reason):
        return Intent.OTHER
    if BOUNCE_SUBJECT.search(subject) and _BOUNCE_BODY.search(text[:20_000]):
        return Intent.BOUNCE
    return None


def _domain(address: str | None) -> str:
    return address.rsplit("@", 1)[-1] if address and "@" in address else ""


def _participants(
    msg: Message, own: str, signature: str, intent: Intent, review: list[str]
) -> tuple[list[people.Person], dict[str, str]]:
    """Participants with organisations, plus the form fields of the first form block."""
    sender_pairs = addresses(msg, "From")
    from_name, from_addr = sender_pairs[0] if sender_pairs else ("", "")
    names = {a: n for h in ("From", "To", "Cc", "Reply-To") for n, a in addresses(msg, h) if n}
    inbox = {a for _, a in addresses(msg, "To")} - {from_addr}
    inbox_domains = {_domain(a) for a in inbox} - {_domain(from_addr)}
    sender = people.Person(people.sender_name(from_name), from_addr)
    if not signature:
        signature = people.signature_after_name(own, sender.name)
    text = body_without_signature(own, signature)
    org = people.signature_org(signature, sender.name) or people.inline_org(text)
    forms = people.form_people(own)
    found: list[people.Person] = []
    form0: dict[str, str] = {}
    for entry in forms:  # shared answers (lunch, role, notes) may sit in any block
        for key, value in entry.items():
            form0.setdefault(key, value)
    if forms:
        for entry in forms:
            email = (entry.get("email") or "").lower()
            match = people.EMAIL_RE.search(email)
            email = match.group(0) if match else (from_addr if len(forms) == 1 else "")
            name = people.clean_name(entry.get("name")) or (
                sender.name if email == from_addr else None
            )
            found.append(people.Person(name, email, entry.get("org")))
    else:
        body = [
            p
            for p in people.body_people(own, names, inbox)
            if _domain(p.email) not in inbox_domains
        ]
        for person in body:
            if person.name is None and person.email == from_addr:
                person.name = sender.name
        found = [p for p in body if p.name]
        substitute = bool(fields.SUBSTITUTE.search(own))
        proxy = people.acts_for_other(own)
        include_sender = substitute or not proxy or people.writes_for_self(own)
        if not found:
            name = people.proxy_name(text) if proxy else None
            found = [people.Person(name or sender.name, from_addr)]
        elif include_sender and not any(
            p.email == from_addr or people.same_person(p.name, sender.name) for p in found
        ):
            found.insert(0, sender)
    found = people.dedupe([p for p in found if p.email or p.name])
    for person in found:
        is_sender = person.email == from_addr or people.same_person(person.name, sender.name)
        same_org = _domain(person.email) == _domain(from_addr) and (
            _domain(from_addr) not in _FREEMAIL
        )
        if not person.org and (is_sender or same_org):
            person.org = org
    if not found or any(not p.email for p in found):
        review.append("no participant e-mail found")
    elif any(not p.name for p in found):
        review.append("participant name missing")
    return found, form0


def _parse(raw: bytes, default_event: int, known: tuple[int, ...]) -> ParsedMail:
    msg = parse_bytes(raw)
    reason = auto_reply_reason(msg)
    hdrs = _headers(msg, reason)
    body = body_text(msg)
    review: list[str] = list(body.problems)
    split = split_quoted(body.text)
    own = split.own[:MAX_OWN_CHARS]
    subject = hdrs.subject
    if not own.strip() and not subject.strip() and not msg.keys():
        return ParsedMail(intent=Intent.OTHER, headers=hdrs, needs_review="empty message")

    intent = _machine_intent(msg, subject, body.text, reason)
    if intent is not None:
        lang = fields.language(own or subject)
        bounced = bounced_addresses(msg) if intent == Intent.BOUNCE else []
        return ParsedMail(
            intent=intent,
            language=lang,
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
    if why:
        review.append(why)
    result = ParsedMail(
        intent=intent,
        language=fields.language(own or subject),
        events=fields.events(text, subject, intent, default_event, known),
        headers=hdrs,
    )
    if intent in (Intent.REGISTER, Intent.CANCEL, Intent.UPDATE):
        found, form = _participants(msg, own, split.signature, intent, review)
        result.participants = [
            Participant(name=p.name, email=p.email or "", organisation=p.org) for p in found
        ]
        if intent != Intent.CANCEL:
            result.lunch = details.lunch(text, form.get("lunch"))
            result.role = details.role(text, form.get("role"))
            result.notes = details.notes(
                text, [form.get("notes", "")], [p.name or "" for p in found]
            )
    result.needs_review = "; ".join(dict.fromkeys(review)) or None
    return result
