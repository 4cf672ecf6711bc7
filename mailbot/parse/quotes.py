"""Split what the sender wrote from what they quoted, and find their signature.

Replies to our invitation quote the whole invitation, which names all four workshops, lunch,
speakers and the registration address. Reading that as the sender's words would turn every
"thanks, I can't come" into a registration for four events, so everything after a reply
header ("Am … schrieb …", "On … wrote:", Outlook "Von:/Gesendet:" blocks, "-----Original
Message-----", forward markers) and every "> " line is set aside before any field is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.parse.phrases import Phrases

_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:Urspr[üu]ngliche Nachricht|Original Message|Weitergeleitete Nachricht|"
    r"Forwarded message|Forwarded Message|Message d'origine|Originalnachricht)\s*-{2,}|"
    r"Begin forwarded message:|Anfang der weitergeleiteten Nachricht:|_{10,}|"
    r"\*?(?:From|Von|De|Van):\*?\s.*\[mailto:.*\]\s*)\s*$",
    re.IGNORECASE,
)
_REPLY_HEADER = re.compile(
    r"^\s*(?:Am\s.{4,120}?\sschrieb\s.{0,200}:|On\s.{4,200}?\swrote:|Le\s.{4,120}?\sa\s[ée]crit\s?:|"
    r"El\s.{4,120}?\sescribi[óo]:|Op\s.{4,120}?\sschreef.{0,200}:)\s*$",
    re.IGNORECASE,
)
# Lotus Notes, Horde and other webmail: "X <x@y> schrieb am …:", "Zitat von X:",
# "X hat am … geschrieben:", "X wrote on …:". Tried only on short lines holding the verb.
_REPLY_HEADER_OTHER = re.compile(
    r"^\s*(?:.{1,200}?\s(?:schrieb|wrote)\s+(?:am|on)\s.{4,80}:|Zitat\s+von\s.{1,200}:|"
    r".{1,200}?\shat\s+am\s.{4,80}\sgeschrieben\s*:)\s*$",
    re.IGNORECASE,
)
_OTHER_VERBS = Phrases(r"schrieb|wrote|zitat|geschrieben", re.IGNORECASE)
_FROM_FIELD = re.compile(r"^\s*\*?(From|Von|De)\*?\s*:", re.IGNORECASE)


def _reply_header(line: str) -> bool:
    if _REPLY_HEADER.match(line):
        return True
    return (
        len(line) < 320
        and bool(_OTHER_VERBS.search(line))
        and bool(_REPLY_HEADER_OTHER.match(line))
    )


_REPLY_HEADER_START = re.compile(r"^\s*(?:Am|On|Le|El|Op)\s+\S", re.IGNORECASE)
_REPLY_HEADER_END = re.compile(r"(?:schrieb|wrote|[ée]crit|escribi[óo]|schreef)[^:]{0,200}:\s*$")
_HEADER_FIELD = re.compile(
    r"^\s*\*?(From|Von|Gesendet|Sent|Date|Datum|An|To|Betreff|Subject|Cc|Kopie)\*?\s*:", re.I
)
_CLOSING = re.compile(
    r"^\s*(?:mit\s+(?:den\s+)?(?:freundlichen|besten|herzlichen|kollegialen|sonnigen)\b.*|"
    r"(?:viele|beste|liebe|herzliche|freundliche|sch[öo]ne)\s+gr[üu](?:ß|ss)e\b.*|"
    r"(?:gru(?:ß|ss)|gr[üu](?:ß|ss)e|mfg|lg|vg|bg)\b[ ,!.]*.*|herzlichst.*|"
    r"(?:kind|best|warm|many\s+thanks\s+and\s+best|with\s+best|with\s+kind)\s+regards\b.*|"
    r"regards\b.*|best\b[ ,!.]*|cheers\b.*|thanks?(?:\s+you)?\b[ ,!.]*|many\s+thanks\b.*|"
    r"sincerely\b.*|yours\b.*|danke\b.*|vielen\s+dank\b[ ,!.]*|tsch[üu]ss\b.*|ciao\b.*|"
    r"servus\b.*|sch[öo]ne\s+gr[üu](?:ß|ss)e.*|bis\s+bald\b.*)$",
    re.IGNORECASE,
)
_CLOSING_END = re.compile(
    r"(?:regards|wishes|gr[üu](?:ß|ss)en?|gru(?:ß|ss)|cheers|thanks|dank)\s*[,!.]?\s*$", re.I
)
_SIG_DASHES = re.compile(r"^\s*(?:--|__+|-{3,}|—+)\s*$")


@dataclass
class SplitText:
    """The sender's own words, the quoted rest, and the signature block."""

    own: str
    quoted: str
    signature: str
    forwarded: bool


def _outlook_header_at(lines: list[str], i: int) -> bool:
    """An Outlook/Apple reply header: 'Von:' or 'From:' followed by more header fields."""
    if not _FROM_FIELD.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 6] if ln.strip()]
    hits = sum(1 for ln in following[:4] if _HEADER_FIELD.match(ln))
    return hits >= 2


def split_quoted(text: str) -> SplitText:
    """Cut `text` at the first reply/forward header and drop '>' lines from the rest."""
    lines = text.split("\n")
    cut = len(lines)
    forwarded = False
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line) or _reply_header(line) or _outlook_header_at(lines, i):
            cut = i
            forwarded = bool(re.search(r"weitergeleitet|forward", line, re.I))
            break
        if _REPLY_HEADER_START.match(line) and i + 1 < len(lines):
            joined = line.rstrip() + " " + lines[i + 1].strip()
            if len(joined) < 300 and _REPLY_HEADER_END.search(joined):
                cut = i
                break
    own_lines = [ln for ln in lines[:cut] if not ln.lstrip().startswith(">")]
    quoted = "\n".join(lines[cut:] + [ln for ln in lines[:cut] if ln.lstrip().startswith(">")])
    own = "\n".join(own_lines).strip()
    return SplitText(own=own, quoted=quoted, signature=find_signature(own), forwarded=forwarded)


def find_signature(own: str) -> str:
    """The lines after the last closing formula ("Mit freundlichen Grüßen", "Best regards")
    or after a '-- ' separator, whichever comes first; bounded to 15 lines."""
    lines = own.split("\n")
    start = None
    for i in range(len(lines) - 1, max(-1, len(lines) - 40), -1):
        line = lines[i].strip()
        if _SIG_DASHES.match(line):
            start = i + 1
        elif len(line) < 70 and (_CLOSING.match(line) or _CLOSING_END.search(line)):
            start = i + 1
            break
    if start is None:
        return ""
    return "\n".join(lines[start : start + 15]).strip()


def body_without_signature(own: str, signature: str) -> str:
    if signature and own.endswith(signature):
        return own[: len(own) - len(signature)].rstrip()
    return own
