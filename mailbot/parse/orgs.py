"""Which organisation a person belongs to: a form field, the signature, or a phrase in the text.

Organisation names have no fixed shape ("Stadt Hamm", "Leeds Civic Trust", "Quartiersbüro
Ostersbaum"), but the lines around them do: job titles, departments, phone numbers and street
addresses are easy to recognise and to rule out. So a signature line scores high when it holds
an institution word (Universität, Stadt, e.V., GmbH, Institute …), and a plain line of a few
capitalised words that is none of the excluded kinds is taken when nothing better is there.
"""

from __future__ import annotations

import re

from mailbot.parse.names import looks_like_person, same_person, strip_titles
from mailbot.parse.phrases import Phrases

EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")

# Legal bodies and public institutions outrank the units inside them ("Social Innovation Lab
# Network" above "Ajuntament de Barcelona" is the team, the city is the organisation).
_ORG_BODY = Phrases(
    r"universit|hochschule|college|\bstadt\s+[A-ZÄÖÜ]|\bcity\s+of\b|\bkreis\b|landkreis|"
    r"gemeinde|ministeri|ministry|stiftung|foundation|verband|verein|\be\.\s?v\.|\beg\b|gmbh|"
    r"\bag\b|\bmbh\b|\bltd\b|\binc\b|ajuntament|ayuntamiento|municipality|council|"
    r"akademie|academy|bezirksregierung|landes|kirchenkreis|volkshochschule|genossenschaft|"
    r"association|society|\btrust\b|kommune|municipal|(?:stadt|kreis|gemeinde|landes)verwaltung",
    re.IGNORECASE,
)
_ORG_STRONG = Phrases(
    r"\bwerk\b|werk\s|beirat|secretariat|zentrum|centre|center|agentur|büro|management|"
    r"förderung|institut(?:e)?\b|diakon|caritas|netzwerk|network|\blab\b|labor\b|\bhub\b|"
    r"initiative|kirche|bildungswerk|\bagency\b|\bgroup\b|"
    # German compounds name their kind at the end: "Quartiersnetz", "Stadtteilbüro", "Jugendamt".
    r"\w(?:netz|werk|büro|haus|amt|zentrum|forum|verbund|bündnis|kontor|kollektiv|rat|hilfe)\b",
    re.IGNORECASE,
)
_ORG_NOT = Phrases(
    r"fachbereich|abteilung|\breferat\b|\bressort\b|\bamt\s+für|fakultät|faculty|school\s+of|"
    r"department|\bdept\b|lehrstuhl|fachgebiet|fachdienst|stabsstelle|sekretariat\s+de|"
    r"bereich|\bteam\b|arbeitsgruppe|\bgroups?\s+(?:for|für)\b|geschäftsführ|leiter|leitung|referent|"
    r"mitarbeiter|officer|manager|founder|director|vorstand|professor|koordinat|sachbearbeit|"
    r"beauftragt|assistent|head\s+of|postdoc|researcher|bürgermeister|beigeordnet|"
    r"\btel\b|telefon|phone|fax|mobil|www\.|https?:|@|straße|str\.|platz\s+\d|\b\d{4,5}\b|"
    r"gesendet|sent\s+from|iphone|android|germany|deutschland|journalist|berater|consultant|"
    r"planner|architekt|student|doktorand|wissenschaftl|assistant|advis|expert|freiberuf|"
    r"freelance|selbst(?:st)?ändig|privat|private|sekretariat|secretary|\bpa\s+to\b",
    re.IGNORECASE,
)
_INLINE_ORG = re.compile(
    r"\b(?:(?:Stadt|Kreis|Landkreis|Gemeinde)\s+[A-ZÄÖÜ][\w-]+|City\s+of\s+[A-Z][\w-]+|"
    r"University\s+of\s+[A-Z][\w-]+|(?:Technische\s+)?Universität\s+[A-ZÄÖÜ][\w-]+|"
    r"(?:Fach)?[Hh]ochschule\s+[A-ZÄÖÜ][\w-]+|[A-ZÄÖÜ][\w-]+(?:\s+[A-ZÄÖÜ][\w-]+){0,3}\s+"
    r"(?:e\.\s?V\.|gGmbH|GmbH|eG|AG))",
)


_ACRONYM = re.compile(r"[A-ZÄÖÜ]{3,15}")
_PLAIN_WORD = re.compile(r"^(?:[A-ZÄÖÜ][\w'’.&-]*|[a-zäöü]{1,4}|[&+/-])$")


def _org_line_score(line: str) -> int:
    """3: a legal body; 2: an institution word; 1: a short line of capitalised words; <= 0: not an org."""
    if _ORG_NOT.search(line):
        return -1
    if _ORG_BODY.search(line):
        return 3
    if _ORG_STRONG.search(line):
        return 2
    words = line.split()
    plain = 2 <= len(words) <= 6 and all(_PLAIN_WORD.match(w) for w in words)
    return 1 if plain and not re.search(r"[\d:;!?]|\.$", line) else 0


def _org_candidate(line: str, own_name: str | None) -> int:
    """Score of `line` as an organisation name (<= 0: not one).

    A line of two or three capitalised words may be a person; in a signature whose owner is
    known (and is not this line), it is far more often the organisation ("Kreisverwaltung
    Mettmann", "AWO Unterbezirk Dortmund"), so it counts then. A lone acronym ("EUROCITIES")
    counts as a weak candidate.
    """
    if not line or len(line) > 120 or ("@" in line and EMAIL_RE.search(line)):
        return 0
    stripped = strip_titles(line)
    if own_name and same_person(stripped, own_name):
        return 0
    score = _org_line_score(line)
    if looks_like_person(stripped) and score < 2 and not own_name:
        return 0
    if len(line.split()) < 2:
        return score if score >= 2 else int(bool(_ACRONYM.fullmatch(line)) and score == 0)
    return score


_SEPARATORS = re.compile(r"\s[–—|·-]\s|\s?\|\s?|,\s")


def signature_org(signature: str, own_name: str | None) -> str | None:
    """The organisation line of a signature: the best-scoring line, the first among equals.

    A line that mixes organisation with department or job ("Institut für X, RWTH Aachen
    University", "Dr. X | Mitarbeiter | Universität Bonn") is read piece by piece.
    """
    best: tuple[int, str] | None = None
    for raw in signature.split("\n"):
        line = raw.strip(" \t-–—|*_")
        pieces = [p.strip(" \t-–—|*_") for p in _SEPARATORS.split(line)]
        scores = [_org_candidate(p, own_name) for p in pieces]
        whole = scores[0] if pieces == [line] else _org_candidate(line, own_name)
        # Read piece by piece when the line as a whole is no organisation, or when it starts
        # with something weaker (a unit or a job) than what follows; else keep it whole
        # ("Ministerium für Heimat, Kommunales, Bau und …" is one name with commas).
        if len(pieces) > 1 and (whole <= 0 or scores[0] < max(scores)):
            candidates = list(zip(scores, pieces, strict=True))
        else:
            candidates = [(whole, line)]
        for score, piece in candidates:
            if score > 0 and (best is None or score > best[0]):
                best = (score, piece)
    return best[1] if best else None


def inline_org(text: str) -> str | None:
    match = _INLINE_ORG.search(text)
    return match.group(0).strip() if match else None


def form_org(value: str | None) -> str | None:
    """A form field's organisation without the unit or job appended after a comma or bar
    ("FH Münster, Fachbereich Sozialwesen" -> "FH Münster"); the field itself is trusted."""
    if not value:
        return None
    pieces = [p.strip(" \t-–—|*_") for p in _SEPARATORS.split(value)]
    kept = [p for p in pieces if p and not _ORG_NOT.search(p)]
    return ", ".join(kept) if kept else value.strip()
