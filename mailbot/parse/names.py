"""Person names: strip academic titles, recognise a name, match a name to an address.

Name badges and the participant list must read "Maarten de Vries", not "Dr. ir. Maarten de
Vries" or "Vries, Maarten de", and the same person appears as "Jörg Weißenfels" in the text
and "joerg.weissenfels@" in the address, so names are compared through a transliteration
that folds umlauts, ß, and accents the way people build e-mail addresses.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_TITLE = re.compile(
    r"(?<![\w-])(?:Prof(?:essor|\.)?(?:\s*em\.)?|Dr\.?(?:\s*-?\s*Ing\.?|\s*rer\.\s*\w+\.|"
    r"\s*phil\.|\s*med\.|\s*jur\.|\s*h\.\s*c\.|\s*ir\.)?|PD|Priv\.-Doz\.|Dipl\.-[\w.-]+|Dipl\.|"
    r"Dipl-Ing\.?|M\.\s?A\.|M\.\s?Sc\.|B\.\s?A\.|B\.\s?Sc\.|MBA|Ph\.?\s?D\.?|Mag\.|ir\.|Ing\.|"
    r"Herrn?|Frau|Mr\.?|Mrs\.?|Ms\.?|Mx\.?|Miss|Sir|i\.\s?A\.|i\.\s?V\.|RA|StR|OStR|StD|OStD|"
    r"Univ\.-Prof\.|Jun\.-Prof\.|apl\.|Hon\.-Prof\.|Rev\.|Revd\.?|LL\.\s?M\.|M\.\s?Eng\.|"
    r"Pfarrer(?:in)?|Pastor(?:in)?|Dekan(?:in)?|Diakon(?:in)?|(?:Ober)?[Bb]ürgermeister(?:in)?|"
    r"Landrat|Landrätin|Ratsherr|Ratsfrau)(?![\w-])",
)
_PARTICLES = frozenset(
    [
        "von",
        "van",
        "de",
        "der",
        "den",
        "du",
        "da",
        "di",
        "del",
        "della",
        "la",
        "le",
        "ter",
        "ten",
        "zu",
        "zur",
        "al",
        "el",
        "bin",
        "ibn",
        "dos",
        "das",
        "y",
    ]
)
_NOT_NAME = re.compile(
    r"(?i)\b(?:stadt|city|team|poststelle|info|service|sekretariat|b[üu]ro|office|verwaltung|"
    r"amt|kreis|gmbh|e\.\s?v\.|universit|hochschule|institut|verein|mail|system|daemon|"
    r"admin|support|kontakt|newsletter|redaktion|anmeldung|gesch[äa]ftsstelle|abteilung|"
    r"referat|fachbereich|netzwerk|network|council|ministerium|stiftung|wirtschaft|"
    r"postmaster|no-?reply|the|und|and|f[üu]r|mit|ich|wir|sie|nicht|bitte|gr[üu](?:ß|ss)e|"
    r"regards|thanks|danke|hallo|hello|dear|liebe|sehr|geehrte)\b"
)
_NAME_TOKEN = r"[A-ZÄÖÜÀ-ÞĀ-ſ][\w'’-]*\.?"
NAME_RE = re.compile(
    rf"{_NAME_TOKEN}(?:\s+(?:(?:{'|'.join(sorted(_PARTICLES))})\s+)*{_NAME_TOKEN}){{1,3}}"
)
PARENTHESES = re.compile(r"\([^)]*\)")  # "(Stadt Dortmund)" after a name
_DIGIT = re.compile(r"\d")
_NOT_LETTER = re.compile(r"[^a-z]")
_FOLD = str.maketrans(
    {"ß": "ss", "ı": "i", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th"}
)


def strip_titles(text: str) -> str:
    """Remove academic and courtesy titles; "Lorenz, Henrike Dr." -> "Henrike Lorenz"."""
    text = PARENTHESES.sub(" ", text)
    prev = None
    while prev != text:
        prev = text
        text = _TITLE.sub(" ", text)
    text = " ".join(text.split()).strip(" ,;:-–—\"'")  # each run of whitespace one space
    if text.count(",") == 1:
        last, first = (p.strip() for p in text.split(","))
        if first and last and " " not in last.strip():
            text = f"{first} {last}"
    return " ".join(text.split()).strip(" ,;:-–—")


def looks_like_person(text: str | None) -> bool:
    """Two to five capitalised words (particles allowed), no digits, no organisation words."""
    if not text or "@" in text or _DIGIT.search(text) or _NOT_NAME.search(text):
        return False
    tokens = text.split()
    if not 2 <= len(tokens) <= 5:
        return False
    caps = [t for t in tokens if t.lower() not in _PARTICLES]
    return len(caps) >= 2 and all(t[0].isupper() and (not t.isupper() or len(t) <= 3) for t in caps)


def clean_name(text: str | None) -> str | None:
    """A participant name without titles, or None if `text` does not look like one."""
    if not text:
        return None
    name = strip_titles(text)
    return name if looks_like_person(name) else None


@functools.lru_cache(maxsize=4096)
def fold(text: str, umlaut_e: bool = True) -> str:
    """Lower-case ASCII folding: "Jörg Weißenfels" -> "joerg weissenfels".

    Kept for the last few thousand texts: the same sender name is folded against every line
    of a signature, 13 times per mail in a rush, and the folding is per character."""
    text = text.lower()
    if umlaut_e:
        text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
    text = text.translate(_FOLD)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def _squash(text: str) -> str:
    return _NOT_LETTER.sub("", text)


def name_matches_address(name: str, address: str) -> bool:
    """Whether an address local part is built from `name` (first.last, f.last, flast, …)."""
    local = _squash(fold(address.split("@", 1)[0]))
    if len(local) < 2:
        return False
    for umlaut_e in (True, False):
        tokens = [_squash(t) for t in fold(name, umlaut_e).split()]
        tokens = [t for t in tokens if t]
        if len(tokens) < 1:
            continue
        first, rest = tokens[0], "".join(tokens[1:])
        last = _squash(tokens[-1])
        forms = {first + rest, first[:1] + rest, rest, first, last, first[:1] + last, first + last}
        forms |= {last + first, last + first[:1]}
        if local in {f for f in forms if len(f) >= 2}:
            return True
    return False


def find_name_for_address(text: str, address: str) -> str | None:
    """A name in `text` from which `address` is built ("Martin Hülsbusch" for martin.huelsbusch@)."""
    for match in NAME_RE.finditer(text):
        words = match.group(0).split()
        for size in range(2, min(4, len(words)) + 1):
            for start in range(0, len(words) - size + 1):
                candidate = clean_name(" ".join(words[start : start + size]))
                if candidate and name_matches_address(candidate, address):
                    local = fold(address.split("@", 1)[0])
                    if len(_squash(local)) > 1 and len(candidate.split()) >= 2:
                        return candidate
    return None


def same_person(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return _squash(fold(a)) == _squash(fold(b)) or set(fold(a).split()) == set(fold(b).split())
