"""Which workshops a mail is about: numbers, ordinals, lists of them, "alle vier", the default.

People name workshops in many ways ("2. Werkstatt", "zweite und vierte Werkstatt", "für die
3.", "workshops 2 and 4", "alle vier Werkstätten") and mention several in one mail with
different verbs ("from the 3rd I withdraw, the 22nd stays"). Mentions are therefore read per
clause, with the clause's negation deciding whether it counts for or against, and a list of
ordinals in front of one noun counts as all of its members.
"""

from __future__ import annotations

import re

from mailbot.models import Intent
from mailbot.parse.fields import CANCEL, NEGATION, REGISTER, REPLY_SUBJECT
from mailbot.parse.phrases import Phrases
from mailbot.parse.text import clauses, sentences

_I = re.IGNORECASE
_ORDINALS = {
    "erste": 1, "first": 1, "1st": 1, "zweite": 2, "second": 2, "2nd": 2,
    "dritte": 3, "third": 3, "3rd": 3, "vierte": 4, "fourth": 4, "4th": 4,
}  # fmt: skip
_ORDINAL_TERMS = r"(?:erste|zweite|dritte|vierte)[nrsm]?|first|second|third|fourth"
_WORD_ORD = rf"{_ORDINAL_TERMS}|[1-4](?:st|nd|rd|th)"
_ONE = rf"(?:[1-9]\s*\.(?!\s*\d)|{_WORD_ORD})"
_JOIN = r"\s*(?:,|und|oder|sowie|bzw\.?|and|or|&|/|\+)\s*(?:(?:die|der|den|zur|zum|the|auch)\s+)?"
_NOUN = r"(?:werkst[aä]tt|workshop|termin|veranstaltung|session|lab\b|labor)"
_MONTHS = r"jan|feb|mär|mar|apr|mai|may|jun|jul|aug|sep|okt|oct|nov|dez|dec|\d"
# "2. und 4. Werkstatt", "zweite und die vierte Werkstatt", "the second and fourth workshop"
_LIST_BEFORE = re.compile(rf"\b({_ONE}(?:{_JOIN}{_ONE})*)\s*{_NOUN}", _I)
# "Werkstatt 3", "Werkstätten 2 und 3", "workshops no. 2 and 4" (not "Workshop 22.02.")
_LIST_AFTER = re.compile(
    r"(?:werkst[aä]tt\w*|workshops?)\s*(?:nr\.?|no\.?|nummer|number|#)?\s*"
    r"([1-9](?:\s*(?:,|und|and|&|/|oder|or)\s*[1-9])*)\b(?!\s*[.:]\s*\d)",
    _I,
)
# "für die 3.", "zur 4." without the noun (but not "am 22." or "die 9. Februar")
_ELLIPTIC = re.compile(rf"\b(?:die|der|zur|zum|für\s+die)\s+([1-9])\s*\.(?!\s*(?:{_MONTHS}))", _I)
_ALL = Phrases(
    r"\balle[nm]?\s+(?:vier|4|drei|weiteren)?\s*(?:werkst[aä]tten|termine[n]?|veranstaltungen)|"
    r"\ball\s+(?:four|4)?\s*(?:workshops|sessions|dates)|gesamte[n]?\s+(?:werkstatt)?reihe|"
    r"ganze[n]?\s+(?:werkstatt)?reihe|whole\s+series|entire\s+series|\balle\s+vier\b",
    _I,
)
# A workshop named by its date ("die Werkstatt am 22. Februar") rather than its number.
_DATED = Phrases(
    rf"(?:werkst[aä]tt|workshop|veranstaltung)\w*\s+(?:am|on|vom|the)?\s*\d{{1,2}}\s*\.?\s*(?:{_MONTHS})|"
    r"\b(?:am|on)\s+(?:the\s+)?\d{1,2}(?:\.|st|nd|rd|th)?\s*(?:feb|02\.|2\.)",
    _I,
)
_LIST_COMMA = re.compile(rf"({_ONE})\s*,\s*(?={_ONE})", _I)


def _numbers(span: str) -> list[int]:
    out: list[int] = []
    for token in re.findall(rf"[1-9](?=\s*\.)|[1-9](?!\d)|{_WORD_ORD}", span, _I):
        word = token.lower().rstrip("nrsm") if token[0].isalpha() else token.lower()
        if word in _ORDINALS:
            out.append(_ORDINALS[word])
        elif token[0].isdigit():
            out.append(int(token[0]))
    return out


# Every match of the three list patterns holds a digit or an ordinal word: most clauses have
# neither. `_NUMBERED` says so, and `has_number` gives its answer cheaper: a case-insensitive
# regex without a literal start tries every alternative at every position, while a plain
# character class and `Phrases` skip ahead in C (tests/test_parse_phrases.py compares them).
_NUMBERED = re.compile(rf"[1-9]|{_WORD_ORD}", _I)
_ONE_TO_NINE = re.compile("[1-9]")  # digits have no case: the same as under IGNORECASE
_ORDINAL_WORD = Phrases(_ORDINAL_TERMS, _I)  # "1st" and the like hold a digit
# The list patterns before and after a number need one of these nouns; _ELLIPTIC needs a
# digit after a space and before a dot; _LIST_COMMA a number before a comma.
_NOUNS = Phrases(_NOUN, _I)
_ELLIPTIC_HINT = re.compile(r"\s[1-9]\s*\.")
_NUMBER_COMMA = re.compile(r"[1-9]\s*\.\s*,")


def has_number(text: str) -> bool:
    """Whether `_NUMBERED` matches `text`."""
    return bool(_ONE_TO_NINE.search(text) or _ORDINAL_WORD.search(text))


def mentions(text: str, known: tuple[int, ...]) -> list[int]:
    """Workshop numbers named in `text` (all known ones for "alle vier")."""
    found: list[int] = []
    if _ALL.search(text):
        found.extend(known)
    if not has_number(text):
        return [n for n in found if n in known]
    patterns = [_LIST_BEFORE, _LIST_AFTER] if _NOUNS.search(text) else []
    if _ELLIPTIC_HINT.search(text):
        patterns.append(_ELLIPTIC)
    for pattern in patterns:
        for match in pattern.finditer(text):
            found.extend(_numbers(match.group(1)))
    return [n for n in found if n in known]


def events(
    own: str, subject: str, intent: Intent, default: int, known: tuple[int, ...]
) -> list[int]:
    """Workshop numbers the mail is about; [default] when none is named."""
    if intent in (Intent.AUTOREPLY, Intent.BOUNCE, Intent.OTHER):
        return []
    positive: list[int] = []
    negative: list[int] = []
    dated = False
    for sentence in sentences(own):
        if "," in sentence and (_NUMBER_COMMA.search(sentence) or _ORDINAL_WORD.search(sentence)):
            sentence = _LIST_COMMA.sub(r"\1 und ", sentence)
        named = False
        for clause in clauses(sentence):
            nums = mentions(clause, known)
            if not nums:
                continue
            named = True
            neg = bool(NEGATION.search(clause) or CANCEL.search(clause))
            (negative if neg else positive).extend(nums)
        # "ich melde mich für die Werkstatt am 22. Februar an. Für die 3. auch": the dated,
        # unnumbered workshop is the current one.
        if not named and _DATED.search(sentence) and REGISTER.search(sentence):
            dated = True
    if dated and positive and default in known:
        positive.append(default)
    chosen = (negative or positive) if intent == Intent.CANCEL else positive
    if not positive and not negative:  # nothing in the text: the subject may name it
        chosen = mentions(REPLY_SUBJECT.sub("", subject), known)
    return sorted(set(chosen)) or [default]
