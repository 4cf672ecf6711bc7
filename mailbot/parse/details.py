"""The details of a registration: lunch, role (speaker or participant), diet/access notes.

Kept apart from intent and event rules because they are read only once a mail is known to be
a registration or change, and because their wording ("nehme am Imbiss teil", "als
Referentin", "vegetarisch") is a small vocabulary of its own.
"""

from __future__ import annotations

import re

from mailbot.models import Role
from mailbot.parse.fields import NEGATION
from mailbot.parse.phrases import Phrases
from mailbot.parse.text import clauses, sentences

_I = re.IGNORECASE
_LUNCH = Phrases(
    r"mittagsimbiss|\bimbiss|mittagessen|\blunch|verpflegung|catering|\bkein(?:en)?\s+essen|"
    r"\b(?:zum|beim|das)\s+essen\b",
    _I,
)
_SPEAKER = Phrases(
    r"(?:\bals|\bas(?:\s+an?)?|rolle\s*:|role\s*:|funktion\s*:|teilnahme\s+als\s*:|"
    r"participation\s*:)\s*(?:referent(?:in)?\b|vortragende|speaker|presenter|keynote|"
    r"impulsgeber)|\bspeaker\b",
    _I,
)
_PARTICIPANT = Phrases(
    r"diskussionsteilnehm\w*|discussion\s+participant|(?:\bals|\bas(?:\s+an?)?|rolle\s*:|"
    r"role\s*:|funktion\s*:|teilnahme\s+als\s*:)\s*(?:teilnehmer(?:in)?\b|participant\b|"
    r"zuhörer\w*|gast\b|attendee\b)",
    _I,
)
_DIET_TERMS = (
    r"vegetarisch\w*|vegetarian|vegan\w*|glutenfrei|gluten[- ]free|laktosefrei|lactose[- ]free|"
    r"halal|koscher|kosher|pescetari\w*|allergi\w*|unverträglich\w*|nussallergie"
)
_DIET = re.compile(rf"\b({_DIET_TERMS})\b", _I)
# The same terms without the word boundaries, as `Phrases`: it finds a sentence without any
# of their words in one scan, where _DIET's case-insensitive alternatives would be tried at
# every character. Only a sentence it finds something in is scanned by _DIET.
_DIET_WORDS = Phrases(_DIET_TERMS, _I)
# A form label before a remark ("Anmerkung: vegetarisch"), dropped before the remark is kept.
_LABEL = re.compile(r"^[\w ./-]{1,40}:\s+")
_ACCESS = Phrases(
    r"rollstuhl|rollator|barrierefrei|gehbehindert|aufzug|schwerhörig|hörgerät|höranlage|"
    r"induktionsschleife|gebärden|blind|sehbehindert|wheelchair|accessib|hearing|mobility|"
    r"step-free|sign\s+language",
    _I,
)


def lunch(own: str, form_value: str | None) -> bool | None:
    """Lunch wish: the last statement about lunch decides (later corrections win)."""
    if form_value is not None:
        value = form_value.strip().lower()
        if re.match(r"(?:ja|yes|gern|gerne|y|x|1|true|selbstverständlich)\b", value):
            return True
        if re.match(r"(?:nein|no|kein|n|0|false|nicht)\b", value):
            return False
    verdict: bool | None = None
    for sentence in sentences(own):
        if not _LUNCH.search(sentence):
            continue
        parts = clauses(sentence)
        for i, clause in enumerate(parts):
            if not _LUNCH.search(clause):
                continue
            window = clause if len(clause.split()) >= 4 else " ".join(parts[i : i + 2])
            verdict = not NEGATION.search(window)
    return verdict


def role(own: str, form_value: str | None) -> Role | None:
    text = f"{form_value or ''}\n{own}"
    if form_value:
        text = f"rolle: {form_value}\n{own}"
    if _SPEAKER.search(text):
        return Role.SPEAKER
    if _PARTICIPANT.search(text):
        return Role.PARTICIPANT
    return None


def notes(own: str, form_notes: list[str], names: list[str]) -> str | None:
    """Diet and accessibility remarks, attributed to a person when several are registered."""
    found: list[str] = []
    for value in form_notes:
        if (_DIET_WORDS.search(value) and _DIET.search(value)) or _ACCESS.search(value):
            found.append(value.strip())
    for sentence in sentences(own):
        sentence = _LABEL.sub("", sentence).strip()
        if _ACCESS.search(sentence) and not any(sentence in f or f in sentence for f in found):
            found.append(sentence)
        for match in _DIET.finditer(sentence) if _DIET_WORDS.search(sentence) else ():
            word = match.group(1).lower()
            who = [n for n in names if any(part in sentence for part in n.split())]
            note = f"{word} ({who[0]})" if len(names) > 1 and len(who) == 1 else word
            if not any(word in f.lower() for f in found):
                found.append(note)
    return "; ".join(found)[:500] or None
