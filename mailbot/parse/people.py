"""Who is registering: form fields, name/address lines, the sender, people sent in proxy.

The README's rule: the address is the one written in the body for that person, otherwise the
From address. Secretaries register their bosses ("im Auftrag von Herrn …"), colleagues are
listed one per line, people write from private accounts but give their work address, and
signatures carry the organisation. The functions here turn those habits into Participant
records, and deliberately ignore contact addresses ("in dringenden Fällen …", old addresses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailbot.parse.names import (
    NAME_RE,
    PARENTHESES,
    clean_name,
    find_name_for_address,
    name_matches_address,
    same_person,
    strip_titles,
)
from mailbot.parse.orgs import EMAIL_RE
from mailbot.parse.phrases import Phrases

_FIELD = re.compile(r"^\s*[-*•]?\s*([A-Za-zÄÖÜäöüß][\w ./()-]{0,40}?)\s*:\s*(.*\S)?\s*$")
_KEYS = {
    "name": r"name|vor-?\s*und\s+nachname|voller\s+name|full\s+name|teilnehmer(?:in)?|"
    r"teilnehmende[r]?|participant|person",
    "email": r"e-?\s*mail(?:-?\s*adresse)?|email\s+address|mail|e-?mail\s+address",
    "org": r"institution|organi[sz]ation|einrichtung|firma|arbeitgeber|behörde|verein|"
    r"affiliation|company|dienststelle|institut|unternehmen|träger|kommune|verwaltung|employer",
    "role": r"rolle|role|funktion|teilnahme\s+als|participation|teilnahmeart|teilnahmeform",
    "lunch": r"mittagsimbiss|mittagessen|imbiss|lunch|verpflegung|catering|essen|mittag",
    "notes": r"sonstiges|anmerkung(?:en)?|bemerkung(?:en)?|hinweis(?:e)?|barrierefreiheit|"
    r"ernährung|diet(?:ary)?(?:\s+requirements)?|accessibility|notes?|comments?|"
    r"besondere\s+bedürfnisse|unverträglichkeiten|allergien",
    "first": r"vorname|first\s+name|given\s+name",
    "last": r"nachname|familienname|last\s+name|surname|family\s+name",
}
_KEY_PATTERNS = {key: re.compile(pattern) for key, pattern in _KEYS.items()}
_LABEL_NUMBER = re.compile(r"^\d+[.)]?\s*|\s*(?:#|nr\.?)?\s*\d+$")
_LIST_MARK = re.compile(r"^\s*(?:[-*•·]|\(?\d+[.)]|[a-z]\))\s*")
_NAME_SEGMENT_END = re.compile(r"[,;:|<>(\[]|\s[–—-]\s|\s[–—-]$")
_EXCLUDE_CONTEXT = Phrases(
    r"(?:alte|alten|bisherige|frühere|old|previous|former)\s+(?:e-?mail-?)?(?:adresse|address)|"
    r"wenden\s+sie\s+sich|\bcontact\b|kontaktier|erreichen\s+sie|sekretariat|\boffice\b|vertretung\s+ist|"
    r"dringend|urgent|rückfragen|questions|abgeschaltet",
    re.IGNORECASE,
)
# Phrases of someone who registers another person (secretaries, team leads, assistants).
_PROXY = Phrases(
    r"\bim\s+auftrag\b|\bi\.\s?a\.|\bon\s+behalf\s+of\b|\bmelde\s+ich\s+(?:ihn|sie)\b|"
    r"\banmeldung\s+(?:von|des|der|für)\s+(?:herrn?|frau)\b|"
    r"\bregister\s+(?:my|our|the\s+following)\s+(?:\w+\s+)?(?:colleague|boss|manager|director|staff|team)|"
    r"\bmelde(?:n)?\s+(?:ich|wir)\s+(?:\w+\s+){0,3}?(?:kolleg|mitarbeiter|chef|vorgesetzt|personen|"
    r"teilnehmer|folgende|herrn?\b|frau\b)",
    re.IGNORECASE,
)
# The sender's own participation ("melde mich an", "I would like to attend", "ich selbst").
_SELF = Phrases(
    r"\bmelde[nt]?\s+(?:ich\s+|wir\s+)?(?:mich|uns)\b|\b(?:mich|uns)\b[^.!?\n]{0,80}\b(?:an|ab)(?:zu)?melden|"
    r"\bich\s+(?:komme|nehme|bin)\b|\bwir\s+(?:kommen|nehmen|sind)\b|"
    r"\b(?:ich|wir)\s+(?:würden?|möchten?|werden?)\s+(?:(?!sie\b|ihn\b|herrn?\b|frau\b|kolleg)\w+\s+){0,6}?"
    r"(?:teilnehmen|kommen|dabei|mitmachen)|\bich\s+selbst\b|\bmyself\b|\bme\s+too\b|"
    r"\b(?:i|we)\s*(?:would|will|['’]d|['’]ll|want|wish|plan|am\s+going|are\s+going)\s+"
    r"(?:\w+\s+){0,2}?(?:attend|come|join|participate|take\s+part|be\s+there)|"
    r"\b(?:i|we)\s*(?:am|are|['’]m|['’]re)\s+(?:attending|joining|coming)|"
    r"\bcount\s+(?:me|us)\s+in\b|\bsign\s+(?:me|us)\s+up\b|\bregister\s+(?:me|us)\b",
    re.IGNORECASE,
)
# The sender says they will not come themselves ("Ich selbst kann leider nicht teilnehmen").
_NOT_SELF = Phrases(
    r"\bich\s+selbst\s+(?:\w+\s+){0,4}?(?:nicht|verhindert)\b|\bselbst\s+(?:kann|werde|komme)\s+"
    r"ich\s+(?:\w+\s+){0,3}?nicht\b|\bi\s+(?:myself\s+)?(?:won['’]t|will\s+not|cannot|can['’]t|"
    r"am\s+not\s+able\s+to)\s+(?:be\s+)?(?:attend|come|join|make|there)\w*\s+(?:\w+\s+){0,3}?myself\b|"
    r"\bnot\s+(?:attend|come|be\s+there)\w*\s+myself\b|\bi\s+myself\s+(?:won['’]t|will\s+not|cannot|can['’]t)",
    re.IGNORECASE,
)
_PERSON_REF = re.compile(
    r"\b(?:Herrn?|Frau|Mr\.?|Mrs\.?|Ms\.?)\s+((?:[A-ZÄÖÜ][\w.'’-]*\.?\s+|(?:von|van|de|der|zu)\s+)"
    r"{0,5}[A-ZÄÖÜ][\w'’-]+)"
)
_SALUTATION = re.compile(r"^\s*(?:sehr\s+geehrte|liebe|hallo|guten|dear|hi|moin)\b", re.I)


@dataclass
class Person:
    name: str | None
    email: str
    org: str | None = None
    extras: dict[str, str] = field(default_factory=dict)


def _key_of(label: str) -> str | None:
    label = _LABEL_NUMBER.sub("", label.strip().lower())
    for key, pattern in _KEY_PATTERNS.items():
        if pattern.fullmatch(label):
            return key
    return None


def form_people(text: str) -> list[dict[str, str]]:
    """'Name: … / E-Mail: … / Institution: …' blocks; a new Name starts a new person."""
    people: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        match = _FIELD.match(line) if ":" in line else None  # a field needs its colon
        if not match or not match.group(2):
            continue
        key = _key_of(match.group(1))
        if key is None:
            continue
        if key in ("name", "first", "email") and key in current:
            people.append(current)
            current = {}
        current[key] = match.group(2).strip()
    if current:
        people.append(current)
    for person in people:
        if "name" not in person and ("first" in person or "last" in person):
            person["name"] = f"{person.get('first', '')} {person.get('last', '')}".strip()
    return [p for p in people if "name" in p or "email" in p]


def _line_name(line_prefix: str, address: str) -> str | None:
    prefix = PARENTHESES.sub(" ", _LIST_MARK.sub("", line_prefix))
    segments = [s.strip() for s in _NAME_SEGMENT_END.split(prefix) if s.strip()]
    named = [clean_name(s) for s in segments]
    for name in named:
        if name and name_matches_address(name, address):
            return name
    return next((n for n in named if n), None)


def body_people(text: str, header_names: dict[str, str], skip: set[str]) -> list[Person]:
    """People named next to an address in the text; contact and old addresses are skipped."""
    found: list[Person] = []
    for match in EMAIL_RE.finditer(text) if "@" in text else ():
        address = match.group(0).lower().rstrip(".")
        if address in skip or any(p.email == address for p in found):
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[max(line_start, match.start() - 120) : match.start()]
        if _EXCLUDE_CONTEXT.search(text[max(0, match.start() - 60) : match.start()]):
            continue
        name = (
            _line_name(before, address)
            or clean_name(header_names.get(address))
            or find_name_for_address(text, address)
        )
        found.append(Person(name=name, email=address))
    return found


def _ref_name(raw: str) -> str | None:
    tokens = strip_titles(raw).split()
    keep: list[str] = []
    for token in reversed(tokens):
        keep.insert(0, token)
        if len([t for t in keep if t[:1].isupper()]) == 2:
            break
    return clean_name(" ".join(keep))


def proxy_name(text: str) -> str | None:
    """The person a proxy writes for ("im Auftrag von Herrn Prof. Dr. Klaus Remmert")."""
    lines = [ln for ln in text.split("\n") if not _SALUTATION.match(ln)]
    for candidate in (*lines, re.sub(r"\s*\n\s*", " ", "\n".join(lines))):
        for match in _PERSON_REF.finditer(candidate):
            name = _ref_name(match.group(1))
            if name:
                return name
    return None


def acts_for_other(text: str) -> bool:
    return bool(_PROXY.search(text))


def writes_for_self(text: str) -> bool:
    return bool(_SELF.search(text))


def not_self(text: str) -> bool:
    """The sender says they themselves will not come."""
    return bool(_NOT_SELF.search(text))


def sender_name(display: str | None, signature: str = "") -> str | None:
    """The sender's name from the From display name, else from the first signature line."""
    name = clean_name(display) if display else None
    if name or not signature:
        return name
    lines = [ln.strip() for ln in signature.split("\n") if ln.strip()][:3]
    return next((n for n in map(clean_name, lines) if n), None)


def signature_after_name(own: str, name: str | None) -> str:
    """Fallback signature: the lines after the last line that is just the sender's name."""
    if not name:
        return ""
    lines = own.split("\n")
    for i in range(len(lines) - 1, max(-1, len(lines) - 15), -1):
        if same_person(strip_titles(lines[i].strip()), name):
            return "\n".join(lines[i + 1 : i + 12]).strip()
    return ""


def dedupe(people: list[Person]) -> list[Person]:
    out: list[Person] = []
    for person in people:
        twin = next(
            (p for p in out if p.email == person.email or same_person(p.name, person.name)), None
        )
        if twin is None:
            out.append(person)
        elif twin.name is None and person.name:
            twin.name = person.name
    return out


__all__ = ["NAME_RE", "Person"]
