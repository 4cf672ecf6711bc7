"""Sentence and clause splitting tuned for German/English business mail.

Rules like "this clause says *not* the 3rd workshop" need sentences, but naive splitting on
"." breaks "am 22. Februar", "Frau Dr. Vesper" and "z. B." into fragments, and hard-wrapped
plain text breaks one sentence over several lines. These helpers keep such units together.
"""

from __future__ import annotations

import functools
import re

_ABBREV = frozenset(
    [
        "dr",
        "prof",
        "ing",
        "dipl",
        "nr",
        "str",
        "ca",
        "bzw",
        "z",
        "b",
        "u",
        "a",
        "d",
        "h",
        "s",
        "o",
        "v",
        "i",
        "e",
        "g",
        "evtl",
        "ggf",
        "inkl",
        "vgl",
        "tel",
        "fax",
        "mr",
        "mrs",
        "ms",
        "st",
        "jr",
        "sr",
        "hr",
        "fr",
        "frl",
        "abt",
        "ref",
        "etc",
        "usw",
        "no",
        "max",
        "min",
        "bspw",
        "insb",
        "sog",
    ]
)
# Form labels start with a capital ("Name:", "E-Mail:"); a lower-case "zurückziehen:" is a
# wrapped sentence going on.
_BREAK_BEFORE = re.compile(r"^\s*(?:[-*•·]|\d+[.)]\s|[A-ZÄÖÜ][\w /-]{0,30}:\s)")
_SENTENCE_END = re.compile(r"[.!?:]\s*$")
# A sentence ends at . ! or ? before a capital (perhaps after a quote or bracket).
_SENTENCE_BREAK = re.compile(r"[.!?]+(?=\s+[\"„“(]?[A-ZÄÖÜ])")
_CLAUSE_BREAK = re.compile(r"[,;–—]|\s-\s|\b(?:aber|jedoch|sondern|but|however|although)\b")
# What every clause break holds. A regex of literals skips ahead in C; _CLAUSE_BREAK, which
# begins with \s and \b, is tried at every character.
_CLAUSE_HINT = re.compile(r"[,;–—-]|aber|jedoch|sondern|but|however|although")


def last_word(text: str) -> str:
    """The word `text` ends with, as `([\\w-]+)$` finds it, or "".

    Read backwards from the end: the regex tries every position of the sentence so far.
    (`str.isalnum` is the regex engine's test for a word character other than "_".)
    """
    end = len(text) - 1 if text.endswith("\n") else len(text)
    start = end
    while start and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    return text[start:end]


def unwrap(text: str) -> str:
    """Join hard-wrapped lines of a paragraph; keep lists, form fields and short lines."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        if (
            out
            and out[-1].strip()
            and line.strip()
            and len(out[-1]) >= 50
            and not _SENTENCE_END.search(out[-1])
            and not _BREAK_BEFORE.match(line)
        ):
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


@functools.lru_cache(maxsize=16)
def sentences(text: str) -> tuple[str, ...]:
    """Split into sentences; abbreviations, dates and ordinals ("2. Werkstatt") stay inside.

    Kept for the last texts: the rules of one mail ask for the sentences of the same text up
    to five times (events, details, intent).
    """
    result: list[str] = []
    for block in unwrap(text).split("\n"):
        block = block.strip()
        if not block:
            continue
        start = 0
        for match in _SENTENCE_BREAK.finditer(block):
            token = last_word(block[start : match.start()]).lower()
            if match.group(0) == "." and (
                token in _ABBREV or token.isdigit() or len(token) == 1 or not token
            ):
                continue
            result.append(block[start : match.end()].strip())
            start = match.end()
        tail = block[start:].strip()
        if tail:
            result.append(tail)
    return tuple(result)


def clauses(sentence: str) -> list[str]:
    """Split a sentence at commas, semicolons, dashes and contrastive conjunctions."""
    parts = _CLAUSE_BREAK.split(sentence) if _CLAUSE_HINT.search(sentence) else [sentence]
    return [p.strip() for p in parts if p and p.strip()]
