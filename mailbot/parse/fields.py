"""What the sender's own words say: intent and language (workshops: events.py).

These are keyword and phrase rules over the unquoted text (German and English), written as
general patterns of how people register, cancel, change or ask, not as a list of sample
mails. Each rule works on sentences or clauses so that "I can't come on the 22nd but would
like to register for the 3rd" yields register for workshop 3 only.
"""

from __future__ import annotations

import re

from mailbot.models import Intent
from mailbot.parse.phrases import Phrases
from mailbot.parse.text import sentences, unwrap

_I = re.IGNORECASE

SUBSTITUTE = Phrases(
    r"an\s+meiner\s+stelle|statt\s+meiner|\bin\s+vertretung|vertretung\s+durch|vertritt\s+mich|"
    r"(?:teilnehmer|personen)wechsel|übertragen\s+sie\s+(?:meine|die)\s+anmeldung|"
    r"anmeldung\s+auf\s+(?:sie|ihn|meine[nr]?\s+kolleg)|in\s+my\s+place|instead\s+of\s+me\b|"
    r"\breplace\s+me\b|will\s+come\s+instead|kommt\s+stattdessen|stattdessen\s+kommt",
    _I,
)
CANCEL = Phrases(
    r"\babsagen\b|\babsage\b|\bsage\s+(?:[\w.]+\s+){0,4}ab\b|"
    r"\bmelde[nt]?\s+(?:(?:ich|wir|sie)\s+)?(?:mich|uns|ihn|sie|(?:folgende[nr]?|meine[nr]?|"
    r"unsere[nr]?|die|den)\s+\w+|herrn?\s+\w+|frau\s+\w+)\b[^!?\n]{0,120}?\bab\b"
    r"(?=\s*[.,;:!?)]|\s*$)|"
    r"\b(?:mich|uns|ihn|anmeldung)\b[^!?\n]{0,100}?\b(?:abmelden|abzumelden)\b|"
    r"\babmeldung\s+(?:von|für|zur|vom)\s+(?:der|dem|den)?\s*(?:werkstatt|workshop|termin|\d)|"
    r"\b(?:anmeldung|teilnahme|platz|mich)\b[^!?\n]{0,60}?\bstornier\w*|\bstornierung\b|"
    r"zurückziehen|zurückzuziehen|\bstreichen\s+sie\s+(?:mich|uns|ihn|sie)|"
    r"\bcancel(?:l?ing|l?ed)?\s+(?:my|our|his|her|the|this)\s+(?:registration|participation|"
    r"attendance|booking|place|seat|spot|sign[- ]?up)|\b(?:have|need|must)\s+to\s+cancel\b|"
    r"\bcancellation\b|\bwithdraw\w*\s+(?:my|our|from)\b|"
    r"(?:cannot|can\s*not|can['’]?t|could\s*n['’]?t|won['’]?t\s+be\s+able\s+to|unable\s+to|"
    r"not\s+be\s+able\s+to|no\s+longer\s+(?:be\s+able\s+to\s+)?)\s*"
    r"(?:attend|come|make\s+it|participate|join)",
    _I,
)
CANCEL_WEAK = Phrases(
    r"\b(?:kann|können|könnte|werde|muss)\s+(?:ich|wir|er|sie)?\s*[^.!?\n]{0,80}?\bnicht\s+"
    r"(?:\w+\s+){0,4}?(?:teilnehmen|kommen|dabei\s+sein|wahrnehmen)\b|"
    r"\bnicht\s+(?:teilnehmen|kommen)\s+(?:kann|können)\b|\bleider\s+(?:doch\s+)?nicht\b",
    _I,
)
UPDATE = Phrases(
    r"\bänder\w*|\bgeändert|korrigier\w*|\bkorrektur|\bumbuch\w*|namensänderung|\bnachtrag|"
    r"\bchange[ds]?\b|\bupdate\b|\bcorrect(?:ion)?\b|\bkein\s+essen\b|doch\s+nicht\s+zum|"
    # "ich komme nun doch zum Mittagessen", "statt vegetarisch bitte vegan", "lunch after all"
    r"\b(?:nun|jetzt|now)\s+doch\b|\bdoch\s+(?:\w+\s+){0,3}?(?:zum|am|beim|mit|ohne)\s+"
    r"(?:mittag|imbiss|essen)|\b(?:an)?statt\s+[\w-]+\s+(?:bitte|lieber|nun|jetzt)\b|"
    r"\b(?:lunch|essen|mittag\w*)\b[^.!?\n]{0,40}\bafter\s+all\b|\bafter\s+all\b[^.!?\n]{0,40}\blunch\b",
    _I,
)
EXISTING = Phrases(
    r"meine[rn]?\s+anmeldung|unsere[rn]?\s+anmeldung|hatte\s+(?:mich|ich|uns)|\bangemeldet\b|"
    r"anmeldebestätigung|my\s+registration|already\s+registered|i\s+registered|"
    r"registration\s+confirmation",
    _I,
)
REGISTER = Phrases(
    r"\bmelde[nt]?\s+(?:(?:ich|wir|sie)\s+)?(?:mich|uns|ihn|sie|euch|(?:meine[nrm]?|unsere[nrm]?)"
    r"\s+\w+|herrn?|frau|diese[nr]?)\b[^!?\n]{0,160}?\ban\b"
    r"(?=\s*[.,;:!?()–-]|\s*$)|"
    r"\b(?:mich|uns|ihn|sie|herrn?|frau)\b[^!?\n]{0,120}?\ban(?:zu)?melden\b|"
    r"\bmelde[nt]?\s+(?:ich|wir)\s+(?:\w+\s+){0,3}?(?:kolleg\w*|mitarbeit\w*|personen|"
    r"teilnehmer\w*|folgende\w*)\b[^!?\n]{0,120}?\ban\b(?=\s*[.,;:!?()–-]|\s*$)|"
    r"\b(?:hier|anbei|hiermit)\s+(?:ist\s+|kommt\s+|sende\s+ich\s+(?:ihnen\s+)?)?"
    r"(?:meine|unsere|die)\s+anmeldung|\banmeldung\s+(?:von|des|der)\s+(?:herrn?|frau)\b|"
    r"\bsage\s+(?:[\w.]+\s+){0,6}?zu\b(?!\s*(?:dem|den|der|einem|einer|kommen|sein)\b)|\bzusage\b|"
    r"\b(?:möchte|würde|werde|will|möchten|würden|werden)\s+(?:ich|wir|gerne?\s+)?"
    r"[^!?\n]{0,160}?(?:teilnehmen|dabei\s+sein|mitmachen)\b|"
    r"\b(?:meine|unsere)\s+anmeldung\s+(?:für|zur|zum|an)\b|"
    r"\b(?:nehme|nehmen)\s+(?:ich|wir)?\s*[^.!?\n]{0,60}?\bals\s+\w+\s+teil\b|"
    r"\bnehme\s+(?:ich\s+)?(?:gerne?\s+)?(?:an\s+der\s+werkstatt\s+)?teil\b|"
    r"\b(?:nehme\s+ich|nehmen\s+wir|ich\s+nehme|wir\s+nehmen)\b[^!?\n]{0,160}?\bteil\b|"
    r"\b(?:like|love|want|wish|happy|glad|plan|pleased)\s+to\s+(?:register|sign\s+up|attend|"
    r"join\s+(?:the|your)\s+(?:workshop|event|session)|participate|take\s+part)\b|"
    r"\b(?:i|we)\s+(?:will|shall|['’]ll)\s+(?:attend|participate|be\s+there)\b|"
    r"\bplease\s+(?:register|sign\s+up|add)\s+(?:me|us)\b|\bcount\s+me\s+in\b|"
    r"\bsign\s+(?:me|us)\s+up\b|\b(?:i|we)\s*(?:will|shall|['’]ll|am|are|['’]m|['’]re)\s+"
    r"(?:be\s+)?(?:attending|joining|coming)\b|\b(?:i|we)\s+(?:will|shall|['’]ll)\s+join\b|"
    r"\blike\s+to\s+come\b|"
    r"\bbestätige\w*\s+(?:ich\s+|wir\s+)?(?:hiermit\s+)?(?:meine|unsere|die)\s+teilnahme|"
    r"\b(?:ich|wir)\s+(?:komme|kommen)\s+(?:[\w.]+\s+){0,3}?(?:zur|zu\s+der|zum|am|nach)\b|"
    r"\b(?:komme|kommen)\s+(?:ich|wir)\s+(?:[\w.]+\s+){0,3}?(?:zur|zu\s+der|zum)\b|"
    r"\b(?:ich|wir)\s+(?:komme|kommen)\s+(?:sehr\s+)?gerne?\b|\bgerne?\s+(?:komme|kommen)\s+(?:ich|wir)\b|"
    r"\b(?:kommen|sind)\s+(?:wir\s+)?(?:\w+\s+)?zu\s+(?:zweit|dritt|viert|fünft)\b|"
    r"\b(?:ich|wir)\s+(?:bin|sind)\s+(?:[\w.]+\s+){0,3}?dabei\b|\bbin\s+ich\s+(?:[\w.]+\s+){0,3}?dabei\b",
    _I,
)
# "Am 22. bin ich aber wie geplant dabei": an existing registration stays, nothing new.
KEEPS = Phrases(
    r"\bwie\s+(?:geplant|angemeldet|besprochen|vorgesehen)|\bas\s+(?:planned|registered|booked)|"
    r"\bweiterhin\b|\bnach\s+wie\s+vor\b|\bbleibt\b|\bstill\s+(?:come|attend|be\s+there|join)",
    _I,
)
CONDITIONAL = Phrases(
    r"\b(?:dann|ggf|gegebenenfalls|bevor|before|überlege|eventuell|evtl|if\s+so|"
    r"falls\s+ja|wenn\s+ja|once\s+i\s+know|noch\s+nicht\s+sicher|not\s+sure)\b",
    _I,
)
QUESTION = Phrases(
    r"\?|\bfrage\b|\bfragen\b|\bquestion|\bwissen,?\s+ob\b|\bi\s+wonder|\bcould\s+you\s+tell", _I
)
RELEVANT = Phrases(
    r"werkst[aä]tt|workshop|kosi|veranstaltung|mittagsimbiss|\bimbiss|\banmeld|\babmeld|"
    r"\babsage|\bregistr|\bteilnahme|\bteilnehmen|\battend|\bparticipa|\bseminar|\bevent\b",
    _I,
)
EVENT_WORDS = Phrases(r"werkst[aä]tt|workshop|kosi|veranstaltung|mittagsimbiss|imbiss", _I)
REPLY_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|wg|fw|fwd|sv|antw)\s*:\s*)+", _I)
REGISTER_SUBJECT = Phrases(
    r"\banmeldung\b|\bregistration\b|\bsign[- ]?up\b|\bvormerkung\b|\bteilnahme\b", _I
)

_ADDRESSES = re.compile(r"[^\s@<>()]{1,64}@[^\s@<>()]{1,255}|https?://\S+|www\.\S+", _I)
_WWW = re.compile(r"[wW]{3}\.")  # `www\.` under IGNORECASE, without its scan of every position
_PUNCTUATION = re.compile(r"[^\w\s-]")
NEGATION = Phrases(
    r"\bnicht\b|\bkein\w*|\bnot\b|n['’]t\b|\bverzicht\w*|\bnein\b|\bno\b|\bskip\b|\bohne\b|"
    r"\bwithout\b|\bstreichen\b|\babmelden\b|\babsagen\b|\bcancel\w*",
    _I,
)
MAX_CLASSIFY_CHARS = 3000  # what a person writes to register fits; the rest is only cost


def _without_addresses(text: str) -> str:
    """Addresses and links blanked out. Each needs "@", "://" or "www.": without them the
    substitution, which tries a match at every character, would change nothing."""
    if "@" in text or "://" in text or _WWW.search(text):
        return _ADDRESSES.sub(" ", text)
    return text


def _first_unconditional(pattern: Phrases, text: str) -> tuple[bool, bool]:
    """(found unconditionally, found only under a condition like 'dann'/'before')."""
    found = conditional = False
    for sentence in sentences(text):
        for match in pattern.finditer(sentence):
            if CONDITIONAL.search(sentence[: match.end()]):
                conditional = True
            else:
                found = True
    return found, conditional


# Every rule that can make a mail about the workshops needs one of these stems (lower case,
# whitespace collapsed). Most mail in an inbox has none of them and is "other" at the cost
# of one scan instead of a dozen; a corpus test checks that the shortcut changes no result.
_GATE = re.compile(
    "meld|werkst|workshop|kosi|veranstaltung|imbiss|absage|registr|teil|attend|particip|"
    "take part|seminar|event|sage|dabei|mitmach|sign|join|be there|add me|add us|count me|"
    "coming|like to come|komme|stelle|statt|vertret|wechsel|übertragen|my place|instead|"
    "replace|hatte|zu zweit|zu dritt|zu viert|zu fünft|cancel|storn|withdraw"
)
# "Abmeldung" alone is what every reply tells people to write to cancel.
SHORT_CANCEL = re.compile(
    r"\b(?:abmeld\w*|absage|absagen|storn\w*|cancel\w*|withdraw\w*|melde\s+mich\s+ab|"
    r"unsubscribe)\b",
    _I,
)
CANCEL_SUBJECT = re.compile(
    r"^\s*(?:abmeldung|absage|stornierung|storno|cancellation|cancel(?:ling)?|withdrawal)\b", _I
)


def may_concern_us(own: str, subject: str) -> bool:
    """False when no rule of `classify` could find anything but "other" (a cheap pre-check)."""
    text = " ".join(f"{subject[:500]}\n{own[:MAX_CLASSIFY_CHARS]}".lower().split())
    return bool(_GATE.search(text))


def classify(own: str, subject: str, has_form: bool = False) -> tuple[Intent, str | None]:
    """Intent of a human-written mail from its own text and subject; with a review reason.

    `has_form` says the text holds a "Name: … / E-Mail: …" block, itself a registration sign.
    """
    if not may_concern_us(own, subject):
        return Intent.OTHER, None
    return classify_all_rules(own, subject, has_form)


def classify_all_rules(own: str, subject: str, has_form: bool = False) -> tuple[Intent, str | None]:
    """`classify` without the pre-check (the tests compare the two)."""
    # Hard-wrapped lines ("… zur 2. Werkstatt\nam 22.02. anmelden") are joined first: the
    # phrase rules look for a verb and its object within one line.
    own = _without_addresses(unwrap(own[:MAX_CLASSIFY_CHARS]))
    subject = _without_addresses(subject[:500])
    plain_subject = REPLY_SUBJECT.sub("", subject)
    is_reply = bool(REPLY_SUBJECT.match(subject))
    subject_own = "" if is_reply else plain_subject
    both = f"{subject_own}\n{own}"
    words = _PUNCTUATION.sub(" ", own).split()
    if 0 < len(words) <= 6 and SHORT_CANCEL.search(own) and not REGISTER.search(own):
        return Intent.CANCEL, None
    if CANCEL_SUBJECT.match(subject_own) and (
        CANCEL.search(own) or CANCEL_WEAK.search(own) or len(words) <= 12
    ):
        return Intent.CANCEL, None
    topic = f"{subject}\n{own}"  # a reply's subject names what the sender replies to
    has_form = has_form and bool(RELEVANT.search(both) or REGISTER_SUBJECT.search(subject_own))
    strong = (
        has_form
        or EVENT_WORDS.search(both)
        or REGISTER.search(own)
        or (CANCEL.search(both) and RELEVANT.search(topic))
        or (CANCEL_WEAK.search(own) and is_reply and RELEVANT.search(subject))
        or SUBSTITUTE.search(own)
        or (is_reply and EVENT_WORDS.search(subject))
        or (UPDATE.search(own) and EXISTING.search(both))
    )
    if not strong:
        # Registration words alone (newsletters, account mails) are no workshop mail;
        # a question using them still goes to a human.
        weak = len(RELEVANT.findall(both)) >= 2 and QUESTION.search(own)
        return (Intent.QUESTION, "intent unclear") if weak else (Intent.OTHER, None)
    if SUBSTITUTE.search(both):
        return Intent.UPDATE, None
    register, register_if = _first_unconditional(REGISTER, own)
    if CANCEL.search(both):
        # "meine Anmeldung zur 2. Werkstatt zurückziehen" names the registration it cancels:
        # only a registration phrase in a sentence of its own makes the mail mixed.
        mixed = any(
            REGISTER.search(sentence) and not CANCEL.search(sentence) and not KEEPS.search(sentence)
            for sentence in sentences(own)
        )
        return Intent.CANCEL, ("cancels and registers in one mail" if mixed else None)
    if UPDATE.search(both) and (EXISTING.search(both) or EXISTING.search(subject)):
        return Intent.UPDATE, None
    if register or (has_form and not register_if):
        return Intent.REGISTER, None
    if CANCEL_WEAK.search(own):
        return Intent.CANCEL, None
    if register_if or QUESTION.search(own) or QUESTION.search(subject_own):
        return Intent.QUESTION, None
    if REGISTER_SUBJECT.search(subject_own):
        return Intent.REGISTER, "intent unclear"
    if EVENT_WORDS.search(both):
        return Intent.QUESTION, "intent unclear"
    return Intent.OTHER, "intent unclear"
