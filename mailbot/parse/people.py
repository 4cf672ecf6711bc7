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
    clean_name,
    find_name_for_address,
    looks_like_person,
    name_matches_address,
    same_person,
    strip_titles,
)

EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
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
_EXCLUDE_CONTEXT = re.compile(
    r"(?:alte|alten|bisherige|frühere|old|previous|former)\s+(?:e-?mail-?)?(?:adresse|address)|"
    r"wenden\s+sie\s+sich|\bcontact\b|kontaktier|erreichen\s+sie|sekretariat|\boffice\b|vertretung\s+ist|"
    r"dringend|urgent|rückfragen|questions|abgeschaltet",
    re.IGNORECASE,
)
_PROXY = re.compile(
    r"\bim\s+auftrag\b|\bi\.\s?a\.|\bon\s+behalf\s+of\b|\bmelde\s+ich\s+(?:ihn|sie)\b|"
    r"\banmeldung\s+(?:von|des|der|für)\s+(?:herrn?|frau)\b|\bregister\s+my\s+(?:colleague|boss)|"
    r"\bmelde\s+ich\s+(?:meine[nr]?|unsere[nr]?)\s+(?:kolleg|mitarbeiter|chef|vorgesetzt)",
    re.IGNORECASE,
)
_SELF = re.compile(
    r"\b(?:melde\s+(?:ich\s+)?(?:mich|uns)|(?:mich|uns)\b[^.!?\n]{0,80}\b(?:an|ab)melden|"
    r"ich\s+(?:komme|nehme|würde|möchte|werde)|wir\s+(?:kommen|nehmen|möchten|würden)|"
    r"i\s+(?:would|will|'d|’d|'ll|am)|we\s+(?:would|will|'d|’d|'ll))\b",
    re.IGNORECASE,
)
_PERSON_REF = re.compile(
    r"\b(?:Herrn?|Frau|Mr\.?|Mrs\.?|Ms\.?)\s+((?:[A-ZÄÖÜ][\w.'’-]*\.?\s+|(?:von|van|de|der|zu)\s+)"
    r"{0,5}[A-ZÄÖÜ][\w'’-]+)"
)
_SALUTATION = re.compile(r"^\s*(?:sehr\s+geehrte|liebe|hallo|guten|dear|hi|moin)\b", re.I)
_ORG_STRONG = re.compile(
    r"universit|hochschule|college|\bstadt\s+[A-ZÄÖÜ]|\bcity\s+of\b|\bkreis\b|landkreis|"
    r"gemeinde|ministeri|ministry|stiftung|foundation|verband|verein|\be\.\s?v\.|\beg\b|gmbh|"
    r"\bag\b|\bmbh\b|\bltd\b|\binc\b|\bwerk\b|werk\s|beirat|ajuntament|ayuntamiento|"
    r"municipality|council|secretariat|zentrum|centre|center|akademie|academy|agentur|"
    r"büro|management|förderung|institut(?:e)?\b|diakon|caritas|bezirksregierung|landes",
    re.IGNORECASE,
)
_ORG_NOT = re.compile(
    r"fachbereich|abteilung|\breferat\b|\bressort\b|\bamt\s+für|fakultät|faculty|school\s+of|"
    r"department|\bdept\b|lehrstuhl|fachgebiet|fachdienst|stabsstelle|sekretariat\s+de|"
    r"bereich|\bteam\b|arbeitsgruppe|\bgroup\b|geschäftsführ|leiter|leitung|referent|"
    r"mitarbeiter|officer|manager|founder|director|vorstand|professor|koordinat|sachbearbeit|"
    r"beauftragt|assistent|head\s+of|postdoc|researcher|bürgermeister|beigeordnet|"
    r"\btel\b|telefon|phone|fax|mobil|www\.|https?:|@|straße|str\.|platz\s+\d|\b\d{4,5}\b|"
    r"gesendet|sent\s+from|iphone|android|germany|deutschland",
    re.IGNORECASE,
)
_INLINE_ORG = re.compile(
    r"\b(?:(?:Stadt|Kreis|Landkreis|Gemeinde)\s+[A-ZÄÖÜ][\w-]+|City\s+of\s+[A-Z][\w-]+|"
    r"University\s+of\s+[A-Z][\w-]+|(?:Technische\s+)?Universität\s+[A-ZÄÖÜ][\w-]+|"
    r"(?:Fach)?[Hh]ochschule\s+[A-ZÄÖÜ][\w-]+|[A-ZÄÖÜ][\w-]+(?:\s+[A-ZÄÖÜ][\w-]+){0,3}\s+"
    r"(?:e\.\s?V\.|gGmbH|GmbH|eG|AG))",
)


@dataclass
class Person:
    name: str | None
    email: str
    org: str | None = None
    extras: dict[str, str] = field(default_factory=dict)


def _key_of(label: str) -> str | None:
    label = re.sub(r"^\d+[.)]?\s*|\s*(?:#|nr\.?)?\s*\d+$", "", label.strip().lower())
    for key, pattern in _KEYS.items():
        if re.fullmatch(pattern, label):
            return key
    return None


def form_people(text: str) -> list[dict[str, str]]:
    """'Name: … / E-Mail: … / Institution: …' blocks; a new Name starts a new person."""
    people: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        match = _FIELD.match(line)
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
    prefix = re.sub(r"^\s*(?:[-*•·]|\(?\d+[.)]|[a-z]\))\s*", "", line_prefix)
    prefix = re.sub(r"\([^)]*\)", " ", prefix)
    segments = [s.strip() for s in re.split(r"[,;:|<>(\[]|\s[–—-]\s|\s[–—-]$", prefix) if s.strip()]
    named = [clean_name(s) for s in segments]
    for name in named:
        if name and name_matches_address(name, address):
            return name
    return next((n for n in named if n), None)


def body_people(text: str, header_names: dict[str, str], skip: set[str]) -> list[Person]:
    """People named next to an address in the text; contact and old addresses are skipped."""
    found: list[Person] = []
    for match in EMAIL_RE.finditer(text):
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


def sender_name(display: str | None) -> str | None:
    return clean_name(display) if display else None


def _org_line_score(line: str) -> int:
    if _ORG_NOT.search(line):
        return -1
    return 2 if _ORG_STRONG.search(line) else 0


def _org_candidate(line: str, own_name: str | None) -> int:
    """Score of `line` as an organisation name (<= 0: not one)."""
    if not line or len(line) > 120 or EMAIL_RE.search(line):
        return 0
    stripped = strip_titles(line)
    if own_name and same_person(stripped, own_name):
        return 0
    if looks_like_person(stripped) and not _ORG_STRONG.search(line):
        return 0
    score = _org_line_score(line)
    return 0 if len(line.split()) < 2 and score < 2 else score


def signature_org(signature: str, own_name: str | None) -> str | None:
    """The organisation line of a signature: the first line that looks like an institution.

    A line that mixes organisation and department or job ("Stadt Bonn – Amt für …",
    "Dr. X | Mitarbeiter | Universität Bonn") is tried piece by piece.
    """
    best: tuple[int, str] | None = None
    for raw in signature.split("\n"):
        line = raw.strip(" \t-–—|*_")
        pieces = [line]
        if _org_candidate(line, own_name) <= 0:
            pieces = [p.strip(" \t-–—|*_") for p in re.split(r"\s[–—|·-]\s|\s?\|\s?|,\s", line)]
        for piece in pieces:
            score = _org_candidate(piece, own_name)
            if score > 0 and (best is None or score > best[0]):
                best = (score, piece)
    return best[1] if best else None


def signature_after_name(own: str, name: str | None) -> str:
    """Fallback signature: the lines after the last line that is just the sender's name."""
    if not name:
        return ""
    lines = own.split("\n")
    for i in range(len(lines) - 1, max(-1, len(lines) - 15), -1):
        if same_person(strip_titles(lines[i].strip()), name):
            return "\n".join(lines[i + 1 : i + 12]).strip()
    return ""


def inline_org(text: str) -> str | None:
    match = _INLINE_ORG.search(text)
    return match.group(0).strip() if match else None


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
