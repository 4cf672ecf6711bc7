"""Phrase rules that cost what they find, not what they could find.

The parser's rules are long case-insensitive alternations: "absagen | melde … ab | cannot
attend | …", twenty phrases in one pattern. Python's regex engine tries every alternative at
every position of the text, so such a rule costs (characters × alternatives) even when not
one of its words occurs: about a third of a millisecond for an ordinary registration mail, and
the parser asks a dozen such rules per mail (bench/rush.py, cProfile).

`Phrases` gives the same answers faster. It reads from the parsed pattern, for each
alternative, a literal word that every match of it contains, the rarest-looking one
("would" rather than "i" in "i would like"), and how far before that word a match can begin.
One regex of plain words over the lower-cased text says whether any word occurs at all (for
most texts, none does); otherwise `str.find` places each word, and only the alternatives
whose word occurs run, from where a match could begin. An alternative without such a word
(`\\w+x`) always runs. The leftmost match, and the first alternative among those matching
there, wins, exactly as in the whole pattern (tests/test_parse_phrases.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# Case-insensitive matching treats these as "i", "i" and "s"; str.lower() does not (and
# lower-cases "İ" to two characters, which would shift every position after it).
_ODD_CASES = {0x130: "i", 0x131: "i", 0x17F: "s"}
_MAX_WORDS = 64  # spellings of one word, as from (?:can|won)t; more end the word before the group


_last_folded: tuple[str, str] = ("", "")


def fold(text: str) -> str:
    """Lower case with the same length, in which case-insensitive literals are plain ones.

    The parser asks many rules about the same text in a row, so the last result is kept.
    """
    global _last_folded
    last = _last_folded
    if last[0] is text:
        return last[1]
    folded = text
    if "\u0130" in text or "\u0131" in text or "\u017f" in text:
        folded = text.translate(_ODD_CASES)
    folded = folded.lower()
    _last_folded = (text, folded)
    return folded


@dataclass(frozen=True)
class _Part:
    """One alternative, compiled alone, with the words one of which every match contains.

    A match begins at most `lead` characters before its word (None: no bound is known, so
    the search starts where the caller's does).
    """

    source: str
    words: tuple[str, ...] | None
    lead: int | None


@dataclass
class _Plan:
    """What `search` works from: the alternatives, their compiled regexes (each compiled
    when it first runs), the distinct words with the alternatives that wait for each, the
    alternatives that always run, and the one regex of all words (None without words)."""

    parts: list[_Part]
    regexes: list[re.Pattern[str] | None]
    words: list[str]
    owners: list[list[tuple[int, int | None]]]
    always: list[int]
    any: re.Pattern[str] | None


class Phrases:
    """A compiled alternation with a fast `search` (and `finditer`, built on it).

    The pattern must have no capturing groups (a match comes from one alternative compiled
    alone, so group numbers would differ) and no alternative that can match the empty string;
    that is checked when the rule is first used (tests/test_parse_phrases.py uses them all).
    Nothing is parsed or compiled before: every process that imports the parser paid about
    0.1 s at start for the 47 rules, also a `poll --once` that found no mail.
    """

    def __init__(self, pattern: str, flags: int = re.IGNORECASE) -> None:
        self.pattern = pattern
        self.flags = flags
        self._folding = bool(flags & re.IGNORECASE)

    @functools.cached_property
    def _plan(self) -> _Plan:
        parts: list[_Part] = []
        for alternative in split_alternatives(self.pattern):
            parsed = sre_parse.parse(alternative, self.flags)
            if parsed.state.groups > 1:
                raise ValueError(f"Phrases takes no capturing groups: {alternative[:60]!r}")
            if parsed.getwidth()[0] == 0:
                raise ValueError(f"an alternative may match nothing: {alternative!r}")
            words, lead = required_words(parsed)
            if words is not None and self._folding:
                words = {fold(w) for w in words}
            parts.append(_Part(alternative, tuple(sorted(words)) if words else None, lead))
        # Each distinct word is looked up once per search, whichever alternatives share it.
        distinct = sorted({w for part in parts for w in part.words or ()})
        owners: list[list[tuple[int, int | None]]] = [[] for _ in distinct]
        for index, part in enumerate(parts):
            for word in part.words or ():
                owners[distinct.index(word)].append((index, part.lead))
        always = [i for i, part in enumerate(parts) if part.words is None]
        # Most texts a rule is asked about hold none of its words (short lines, mostly): one
        # scan in C says so, before any per-word work in Python. With an alternative that
        # always runs (`\b\d{4,5}\b` beside the 74 words of a signature rule), only that one runs.
        gate = re.compile("|".join(map(re.escape, distinct))) if distinct else None
        return _Plan(parts, [None] * len(parts), distinct, owners, always, gate)

    @property
    def parts(self) -> list[_Part]:
        return self._plan.parts

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        plan = self._plan
        folded = fold(text) if self._folding else text
        # Where each alternative can begin at the earliest: candidates in pattern order.
        earliest: dict[int, int] = dict.fromkeys(plan.always, pos)
        if plan.any is not None and plan.any.search(folded, pos) is not None:
            firsts = [folded.find(word, pos) for word in plan.words]
            for word_index, at in enumerate(firsts):
                if at >= 0:
                    for index, lead in plan.owners[word_index]:
                        begin = pos if lead is None else max(pos, at - lead)
                        if earliest.get(index, begin + 1) > begin:
                            earliest[index] = begin
        elif not earliest:
            return None  # none of its words, and no alternative that runs without one
        best: re.Match[str] | None = None
        for index in sorted(earliest):
            start = earliest[index]
            if best is not None and start >= best.start():
                continue  # it cannot begin further left, and an earlier alternative wins ties
            regex = plan.regexes[index]
            if regex is None:  # compiled on first need: most alternatives rarely run
                regex = plan.regexes[index] = re.compile(plan.parts[index].source, self.flags)
            found = regex.search(text, start)
            if found is not None and (best is None or found.start() < best.start()):
                best = found
        return best

    @functools.cached_property
    def whole(self) -> re.Pattern[str]:
        """The pattern as one regex: what `search` must agree with (tests/test_parse_phrases.py)."""
        return re.compile(self.pattern, self.flags)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Non-overlapping matches left to right, as `re.finditer` (no match is empty)."""
        pos = 0
        while (found := self.search(text, pos)) is not None:
            yield found
            pos = found.end()

    def findall(self, text: str) -> list[str]:
        return [m.group() for m in self.finditer(text)]


def split_alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern, as source text."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _class_end(pattern: str, i: int) -> int:
    """Index of the "]" that closes the character class opening at `i`."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading "]" is a literal
        i += 1
    while pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i


_ZERO_WIDTH = {sre.AT, sre.ASSERT, sre.ASSERT_NOT}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}


def required_words(parsed: Any) -> tuple[set[str] | None, int | None]:
    """Words (case as written) one of which every match contains, picked so that the
    shortest is as long as possible (a rare word skips more texts), and how many characters
    at most come before it in a match (None: unbounded)."""
    items = list(parsed.data)
    best: set[str] | None = None
    best_at = 0
    for at in range(len(items)):
        words, _complete = _literals(items[at:])
        if "" in words:
            # Some matches begin here with no literal at all ("'ll" in (?:will|['’]ll),
            # "\w+n't" in (?:cannot|\w+n't)): the other spellings are not required.
            continue
        if best is None or min(map(len, words)) > min(map(len, best)):
            best, best_at = words, at
    if best is None:
        return None, None
    before = sre_parse.SubPattern(parsed.state, items[:best_at]).getwidth()[1]
    return best, (before if before < sre.MAXREPEAT else None)


def _literals(items: list[Any]) -> tuple[set[str], bool]:
    """The literal text the sequence begins with, as a set of alternatives, and whether it is
    complete (every match is exactly one of them, so what follows may be appended)."""
    found = {""}
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue  # takes no characters: the literals around it stay adjacent
        if op is sre.LITERAL:
            found = {b + chr(av) for b in found}
            continue
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                return found, False
            inner, complete = _literals(list(sub.data))
        elif op is sre.BRANCH:
            inner, complete = set(), True
            for alternative in av[1]:
                more, whole = _literals(list(alternative.data))
                inner |= more
                complete = complete and whole
        elif op in _REPEATS and av[0] >= 1:
            inner, complete = _literals(list(av[2].data))
            complete = complete and av[0] == av[1] == 1
        else:
            return found, False
        if len(found) * len(inner) > _MAX_WORDS:
            return found, False
        found = {b + i for b in found for i in inner}
        if not complete:
            return found, False
    return found, True
