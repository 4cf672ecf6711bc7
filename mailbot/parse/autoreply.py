"""Machine-sent mail: the header rules that mean "never answer this", and bounces.

Answering an auto-reply, a bounce or a mailing list creates mail loops and spam, so these
checks run on headers only (cheap, reliable, independent of language) and return a short
reason naming the rule that fired, which ends up in logs and in `MailHeaders`.
The order of the checks follows RFC 3834 practice: strongest, most specific evidence first.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbot.parse.mime import (
    addresses,
    body_text,
    content_type,
    has_header,
    header,
    iter_parts,
    return_path,
)
from mailbot.parse.phrases import Phrases

_DAEMON_LOCAL = re.compile(
    r"^(?:mailer-daemon|mailer_daemon|post_?master|listserv|majordomo|owner-.+|.+-request|"
    r".+-bounces?(?:\+.*)?|"
    r"no[-_.]?reply.*|.*[-_.]no[-_.]?reply|do[-_.]?not[-_.]?reply.*|"
    r"dont[-_.]?reply.*|noreplies)$",
    re.IGNORECASE,
)
_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_SUPPRESS = frozenset({"all", "oof", "autoreply"})
# Mailing-list managers that do not (always) add RFC 2369 List-* headers.
_LIST_SOFTWARE = frozenset({"x-mailman-version", "x-mlserver", "x-ml-name", "x-list-administrivia"})
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")

AUTOREPLY_SUBJECT = re.compile(
    r"^\s*\[?\s*(?:(?:re|aw|fw|wg)\s*:\s*)?(?:automatische\s+antwort|automatic\s+reply|auto\s*reply|"
    r"autoreply|auto-reply|auto\s*:|abwesenheitsnotiz|abwesenheit|abwesend|out\s+of\s+(?:the\s+)?"
    r"office|ooo\b|urlaub|vacation|on\s+vacation|away\s+from|r[ée]ponse\s+automatique|"
    r"automatisch\s+antwoord|respuesta\s+autom[aá]tica|risposta\s+automatica|"
    r"afwezig|office\s+closed|i\s+am\s+out|i\s*'?m\s+out|automatyczna\s+odpowied|"
    r"automatisk\s+svar|resposta\s+autom[aá]tica|automaattinen\s+vastaus|"
    r"automatick[aá]\s+odpov[eě]d|abwesenheits?(?:meldung|info))",
    re.IGNORECASE,
)
# Forty case-insensitive alternatives, asked about every subject: `Phrases` (phrases.py) for
# the Latin ones. Its lower-casing is exact for Latin letters, not for Cyrillic ones (the
# regex engine takes U+1C82 for "о"), so those stay a regex of their own.
_BOUNCE_SUBJECT_LATIN = Phrases(
    r"undeliver|undelivered\s+mail|delivery\s+status\s+notification|mail\s+delivery\s+fail|"
    r"delivery\s+fail|failure\s+notice|returned\s+mail|return(?:ed)?\s+to\s+sender|"
    r"unzustellbar|nicht\s+zustellbar|delivery\s+has\s+failed|could\s+not\s+be\s+delivered|"
    r"non\s+remis|non\s+recapitabile|message\s+not\s+delivered|delivery\s+problem|"
    r"mail\s+system\s+error|unable\s+to\s+deliver|rejected|bounce|delivery\s+warning|"
    r"delivery\s+notification|non\s+remis|nicht\s+zustellbar|mail\s+failure|failed\s+delivery|"
    r"delivery\s+failure|non-?delivery|error\s+sending|could\s+not\s+send|mail\s+error|"
    r"user\s+unknown|not\s+delivered|nicht\s+zugestellt|zustellungsfehler|unzustellbare|"
    r"message\s+\S+\s+delayed|delivery\s+delayed",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_OTHER = re.compile(r"не\s+доставлено|メールエラー", re.IGNORECASE)


def is_bounce_subject(subject: str) -> bool:
    """A subject that says a mail could not be delivered."""
    return bool(_BOUNCE_SUBJECT_LATIN.search(subject) or _BOUNCE_SUBJECT_OTHER.search(subject))


_DAEMON_NAME = re.compile(r"mail\s*delivery\s*(sub)?system|mailer[-\s]?daemon", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def _local_part(address: str) -> str:
    return address.rsplit("@", 1)[0] if "@" in address else address


def auto_submitted(msg: Message) -> str:
    """The RFC 3834 keyword of `msg`'s Auto-Submitted header, lower-cased, or "" when the
    header is absent, empty or says "no" (a person wrote the mail).

    The one reading of that header for every rule that asks about it: its value is a
    keyword ("no", "auto-generated", "auto-replied" or an extension), optionally followed by
    parameters after ";", and comments in parentheses (which may nest) may stand before or
    after it: "no (human)", "(vacation) Auto-Replied; owner=x". Comparing the whole value
    with "no" took "no; reason=x" for a machine's mark and left a person's registration
    unanswered.
    """
    value = header(msg, "Auto-Submitted")
    depth = 0
    escaped = False
    word: list[str] = []
    for char in value:
        if depth:  # inside a comment: only nesting and quoted pairs matter
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in "()":
                depth += 1 if char == "(" else -1
        elif char == "(":
            if word:
                break
            depth = 1
        elif char == ";":
            break
        elif char.isspace():
            if word:
                break
        else:
            word.append(char)
    # A value without a keyword ("; x", "(?)") was never written by a person's mail program:
    # kept as it is, it still counts as a machine's mark, as it did before.
    keyword = "".join(word).lower() or value.strip().lower()
    return "" if keyword == "no" else keyword


def auto_reply_reason(msg: Message, own: frozenset[str] = frozenset()) -> str | None:
    """Why `msg` must never be answered, or None: the one place that decides it.

    Pure header checks in the order of issue 6 (RFC 3834 practice): empty Return-Path; our
    own addresses (`own`, from the config); daemons, list and no-reply senders;
    Auto-Submitted; Precedence; List-*; X-Auto-Response-Suppress; X-Autoreply/-Autorespond;
    X-Loop naming us; multipart/report; X-MS-Exchange-Inbox-Rules-Loop. The first rule that
    fires names the reason, which is stored with the mail's outcome.
    """
    rp = return_path(msg)
    if rp is not None and re.fullmatch(r"\s*<\s*>\s*", rp):
        return "empty Return-Path"
    if own:
        for name in ("From", "Sender", "Return-Path"):
            for _, addr in addresses(msg, name):
                if addr in own:
                    return f"{name} is our own address"
    for name in ("From", "Return-Path", "Sender"):
        values = [a for _, a in addresses(msg, name)]
        if name == "Return-Path" and rp and not values:
            values = [rp.strip().strip("<>").lower()]
        for addr in values:
            if _DAEMON_LOCAL.match(_local_part(addr)):
                return f"{name} is {_local_part(addr)}"
    auto = auto_submitted(msg)
    if auto:
        return f"Auto-Submitted: {auto}"
    precedence = header(msg, "Precedence").lower().strip()
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    for key in msg:
        if key.lower().startswith("list-") or key.lower() in _LIST_SOFTWARE:
            return f"{key} header"
    suppress = {v.strip().lower() for v in header(msg, "X-Auto-Response-Suppress").split(",")}
    hit = suppress & _SUPPRESS
    if hit:
        return f"X-Auto-Response-Suppress: {sorted(hit)[0]}"
    for name in _AUTOREPLY_HEADERS:
        if has_header(msg, name):
            return f"{name} header"
    if own and has_header(msg, "X-Loop"):
        for value in msg.get_all("X-Loop", []):
            if any(address in str(value).lower() for address in own):
                return "X-Loop names us"
    if content_type(msg) == "multipart/report":
        return "multipart/report"
    if has_header(msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return "X-MS-Exchange-Inbox-Rules-Loop header"
    return None


def is_autoreply_subject(subject: str) -> bool:
    return bool(AUTOREPLY_SUBJECT.match(subject or ""))


def _report_type(msg: Message) -> str:
    try:
        return str(msg.get_param("report-type", "") or "").lower()
    except Exception:
        return ""


def _has_part(msg: Message, ctype: str) -> bool:
    return any(content_type(p) == ctype for p, _ in iter_parts(msg))


def _from_daemon(msg: Message) -> bool:
    for display, addr in addresses(msg, "From"):
        local = _local_part(addr).lower()
        if local in (
            "mailer-daemon",
            "mailer_daemon",
            "postmaster",
            "post_master",
        ) or _DAEMON_NAME.search(display):
            return True
    return bool(_DAEMON_NAME.search(header(msg, "From")))


def is_bounce(msg: Message) -> bool:
    """A delivery failure report (DSN), or a daemon mail that says delivery failed."""
    if content_type(msg) == "multipart/report":
        rtype = _report_type(msg)
        if rtype == "delivery-status" or (not rtype and _has_part(msg, "message/delivery-status")):
            return True
    if _has_part(msg, "message/delivery-status"):
        return True
    return _from_daemon(msg) and is_bounce_subject(header(msg, "Subject"))


def is_read_receipt(msg: Message) -> bool:
    return content_type(msg) == "multipart/report" and _report_type(msg) == (
        "disposition-notification"
    )


def _dsn_blocks(msg: Message) -> list[Message]:
    blocks: list[Message] = []
    for part, _ in iter_parts(msg):
        if content_type(part) != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks.extend(p for p in payload if isinstance(p, Message))
    return blocks


def _clean_recipient(value: str) -> str | None:
    value = value.split(";", 1)[-1].strip().strip("<>").strip().lower()
    match = _ADDRESS.search(value)
    return match.group(0) if match else None


def bounced_addresses(msg: Message, text_fallback: bool = True) -> list[str]:
    """Recipients a bounce reports as failed (DSN fields first, else addresses in the text)."""
    found: list[str] = []
    for block in _dsn_blocks(msg):
        action = header(block, "Action").lower()
        if action and action.split()[0] in ("delayed", "delivered", "relayed", "expanded"):
            continue
        value = header(block, "Final-Recipient") or header(block, "Original-Recipient")
        addr = _clean_recipient(value) if value else None
        if addr and addr not in found:
            found.append(addr)
    if found or _dsn_blocks(msg) or not text_fallback:
        return found
    own = {a for name in ("To", "Cc", "From") for _, a in addresses(msg, name)}
    text = body_text(msg).text[:20_000]
    for match in _ADDRESS.finditer(text):
        addr = match.group(0).lower().rstrip(".")
        if addr in own or addr in found or _DAEMON_LOCAL.match(_local_part(addr)):
            continue
        found.append(addr)
        if len(found) >= 20:
            break
    return found
