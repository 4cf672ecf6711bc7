"""Mail written by machines: bounces, auto-replies, lists and reports, and who bounced.

Answering any of these creates loops or spam, so they are recognised before a mail is read as
human writing: from headers first (RFC 3834 Auto-Submitted, Precedence, List-*, X-Autoreply,
DSN reports), then from the daemon senders and subjects real MTAs use, and last from the text
of out-of-office notes that arrive without any such header. Failed recipients come from the
DSN fields, then from Mailman's bounce detectors (flufl.bounce), then from the text.
"""

from __future__ import annotations

import logging
import re
from email.message import Message

from mailbot.models import Intent
from mailbot.parse import fields
from mailbot.parse.autoreply import (
    auto_submitted,
    is_autoreply_subject,
    is_bounce,
    is_bounce_subject,
    is_read_receipt,
)
from mailbot.parse.autoreply import (
    bounced_addresses as _header_bounced,
)
from mailbot.parse.mime import has_header, header
from mailbot.parse.phrases import Phrases
from mailbot.parse.validate import valid_address

# flufl.bounce logs a traceback at ERROR level whenever one of its heuristic detectors trips
# over an unusual mail and then re-raises; we catch that and fall back, so the noise goes.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

_AUTOREPLY_BODY = Phrases(
    r"abwesend|nicht\s+im\s+büro|out\s+of\s+(?:the\s+)?office|im\s+urlaub|on\s+(?:annual\s+)?"
    r"leave|vacation|limited\s+access|eingeschränkt\w*\s+zugriff|nicht\s+erreichbar|"
    r"nicht\s+mehr\s+(?:bei|für|im|in)\b|no\s+longer\s+(?:with|work)|nicht\s+weitergeleitet|"
    r"automatisch\w*\s+(?:antwort|nachricht)|automatic\w*\s+(?:reply|generated|response)|"
    r"\bbin\s+bis\b|\buntil\b|travell?ing",
    re.IGNORECASE,
)
_BOUNCE_BODY = Phrases(
    r"could\s+not\s+be\s+delivered|undeliverable|delivery\s+(?:has\s+)?failed|nicht\s+zugestellt|"
    r"unzustellbar|user\s+unknown|mailbox\s+(?:is\s+)?(?:full|unavailable)|returned\s+to\s+sender|"
    r"permanent\s+(?:error|failure)|\b5\.\d\.\d+\b|delivery\s+status\s+notification|"
    r"failed\s+recipient|unknown\s+user|no\s+such\s+user|full\s+mailbox|invalid\s+user|"
    r"could\s+not\s+deliver|permanent\s+fatal|mailbox\s+unavailable|not\s+be\s+delivered|"
    r"delivery\s+to\s+the\s+following\s+recipients?\s+failed|recipient\s+address\s+rejected",
    re.IGNORECASE,
)
_LIST_REASON = re.compile(r"^(?:Precedence: (?:bulk|list|junk)|List-)", re.IGNORECASE)
_DAEMON_REASON = re.compile(r"is (?:mailer-daemon|mailer_daemon|post_?master)$", re.IGNORECASE)


def machine_intent(msg: Message, subject: str, text: str, reason: str | None) -> Intent | None:
    """Bounce/auto-reply/list decided from headers (and a glance at the text)."""
    if is_bounce(msg):
        return Intent.BOUNCE
    if is_read_receipt(msg) or is_autoreply_subject(subject):
        return Intent.AUTOREPLY
    if reason == "X-Loop names us":  # our own reply, echoed back by a responder
        return Intent.AUTOREPLY
    if reason == "multipart/report":  # abuse reports and other machine reports
        return Intent.OTHER
    auto = auto_submitted(msg)  # "" for a person's mail: absent, or "no" in any spelling
    precedence = header(msg, "Precedence").lower().strip()
    if (
        auto == "auto-replied"
        or precedence == "auto_reply"
        or any(has_header(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"))
        or has_header(msg, "X-MS-Exchange-Inbox-Rules-Loop")
    ):
        return Intent.BOUNCE if _BOUNCE_BODY.search(text[:5000]) and not auto else Intent.AUTOREPLY
    if reason and _DAEMON_REASON.search(reason):
        return Intent.BOUNCE
    # A failure subject and a failure text: a bounce, whatever list or daemon headers it has.
    if is_bounce_subject(subject) and _BOUNCE_BODY.search(text[:20_000]):
        return Intent.BOUNCE
    if reason and re.match(r"(?:From|Return-Path|Sender) is ", reason):
        return Intent.OTHER  # list servers, list owners, no-reply senders: nobody to talk to
    if reason == "empty Return-Path" or auto:
        if _BOUNCE_BODY.search(text[:5000]) or is_bounce_subject(subject):
            return Intent.BOUNCE
        if _AUTOREPLY_BODY.search(text[:5000]) or reason == "empty Return-Path":
            return Intent.AUTOREPLY
        return Intent.OTHER
    if reason and _LIST_REASON.search(reason):
        return Intent.OTHER
    return None


# Out-of-office notes sent by hand or by a server that adds no header. Each cue alone is
# typical of such notes; two of them, or one in a short text, and no registration, cancellation
# or question in the same text, make it an auto-reply.
_OOO_CUES = (
    r"\b(?:bin|ist|sind)\s+(?:\w+\s+){0,6}?(?:nicht\s+im\s+(?:büro|hause?|dienst)|im\s+urlaub|"
    r"abwesend|außer\s+haus|nicht\s+erreichbar|auf\s+dienstreise|in\s+elternzeit)",
    r"\bkeinen\s+zugriff\s+auf\s+(?:meine|die)\s+e-?mails?|eingeschränkt\w*\s+(?:e-?mail-?)?zugriff",
    r"\b(?:ihre|die|eure)\s+(?:nachricht|e-?mail|mail|anfrage)\s+wird\s+(?:\w+\s+){0,3}?"
    r"(?:nicht\s+weitergeleitet|nach\s+meiner\s+rückkehr|bearbeitet|gelesen)",
    r"\bnach\s+meiner\s+rückkehr\b|\bab\s+dem\s+\d{1,2}\.\s*\d{0,2}\.?\s*\w*\s+wieder\s+(?:im\s+büro|erreichbar|da)",
    r"\bin\s+dringenden\s+fällen\b|\bbei\s+dringenden\s+anliegen\b",
    r"\b(?:i\s+am|i['’]m)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|away|on\s+(?:annual\s+|"
    r"parental\s+|sick\s+)?leave|travell?ing|on\s+(?:vacation|holiday))",
    r"\b(?:will\s+be\s+)?back\s+(?:in\s+the\s+office\s+)?on\b|\bon\s+my\s+return\b",
    r"\b(?:limited|no)\s+access\s+to\s+(?:my\s+)?e-?mails?",
    r"\bwill\s+(?:reply|respond|get\s+back)\s+(?:to\s+(?:you|your\s+\w+)\s+)?(?:as\s+soon\s+as|when\s+i|on\s+my)",
    r"\b(?:for|in)\s+urgent\s+(?:matters|cases|enquiries|inquiries)",
)
_OOO = [Phrases(cue) for cue in _OOO_CUES]
_ANY_OOO = Phrases("|".join(_OOO_CUES))  # one scan for the usual answer: no cue at all


def human_autoreply(own: str) -> bool:
    """An out-of-office note without auto-reply headers (read from the sender's own text)."""
    text = own[:3000]
    if not _ANY_OOO.search(text):
        return False
    hits = sum(1 for cue in _OOO if cue.search(text))
    if not hits or (hits < 2 and len(text) > 400):
        return False
    human = (fields.REGISTER, fields.CANCEL, fields.CANCEL_WEAK, fields.SUBSTITUTE)
    return not any(p.search(text) for p in human) and "?" not in text


def bounced_addresses(msg: Message) -> list[str]:
    """Failed recipients of a bounce: DSN fields or X-Failed-Recipients, else the text.

    Mailman's detectors (flufl.bounce) are slow on long bounces, so they only settle the
    ambiguous case: a text that names no address, or more than one.
    """
    found = _header_bounced(msg, text_fallback=False)
    if not found:
        found = [a.strip() for a in header(msg, "X-Failed-Recipients").split(",") if a.strip()]
    if not found:
        candidates = _header_bounced(msg, text_fallback=True)
        found = candidates if len(candidates) == 1 else _flufl(msg) or candidates
    return [a for a in dict.fromkeys(valid_address(x) for x in found) if a][:50]


def _flufl(msg: Message) -> list[str]:
    # Imported for the rare bounce that needs it (30 ms, as for charsets.detect).
    from flufl.bounce import scan_message

    try:
        return sorted(a.decode("utf-8", "replace").lower() for a in scan_message(msg))
    except Exception:
        return []
