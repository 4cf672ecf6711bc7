"""`Phrases` answers exactly what its whole pattern answers, only faster."""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
import sys
from pathlib import Path

import pytest

import mailbot.parse
from mailbot.parse.phrases import Phrases, fold, split_alternatives

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
DATA = Path(__file__).resolve().parent / "data"


def all_phrases() -> list[tuple[str, Phrases]]:
    found = []
    modules = [mailbot.parse] + [
        importlib.import_module(f"mailbot.parse.{info.name}")
        for info in pkgutil.iter_modules(mailbot.parse.__path__)
    ]
    for module in modules:
        short = module.__name__.removeprefix("mailbot.parse").lstrip(".") or "parse"
        for name, value in vars(module).items():
            if isinstance(value, Phrases):
                found.append((f"{short}.{name}", value))
            elif isinstance(value, list) and value and all(isinstance(v, Phrases) for v in value):
                found += [(f"{short}.{name}[{i}]", v) for i, v in enumerate(value)]
    return found


PHRASES = all_phrases()


def texts() -> list[str]:
    """Mail text of every kind the parser meets (a fixed sample: the whole patterns are the
    slow ones), plus case and boundary traps."""
    rng = random.Random(3)
    paths = [
        path
        for root in (CORPORA, DATA)
        for path in (sorted(root.rglob("*")) if root.exists() else [])
        if path.is_file() and path.stat().st_size < 200_000
    ]
    found = [
        path.read_bytes().decode("utf-8", "replace")[-1500:]  # past the headers, into the text
        for path in rng.sample(paths, min(len(paths), 100))
    ]
    traps = [
        "ICH MELDE MICH AB.",
        "Ich kann leider NICHT TEILNEHMEN",
        "I CANNOT ATTEND, sorry",
        "İch melde mıch an, ſtornieren Sie bitte",  # case-insensitive i, dotless i, long s
        "Anmeldung:Abmeldung;absagen!ABSAGE?",
        "xabsagen absagenx ab-sagen",
        "Werkstatt\nam 22.02. anmelden",
        "Ok, I'll join. We'll join. I'd come to the workshop. I'll be there. I won't go.",
    ]
    for _ in range(60):  # shuffled words from the traps and the mails: odd neighbours
        words = rng.choice(found + traps).split()
        rng.shuffle(words)
        traps.append(" ".join(words[:60]))
    return found + traps


TEXTS = texts()


def test_the_parser_uses_phrases() -> None:
    assert len(PHRASES) >= 40


@pytest.mark.parametrize(("name", "phrases"), PHRASES, ids=[n for n, _ in PHRASES])
def test_same_matches_as_the_whole_pattern(name: str, phrases: Phrases) -> None:
    for text in TEXTS:
        for pos in (0, 1, len(text) // 3):
            fast, whole = phrases.search(text, pos), phrases.whole.search(text, pos)
            assert (fast and fast.span()) == (whole and whole.span()), (name, text[:80], pos)
        fast_all = [m.span() for m in phrases.finditer(text)]
        assert fast_all == [m.span() for m in phrases.whole.finditer(text)], (name, text[:80])


LINES = sorted({line.strip() for text in TEXTS for line in text.splitlines() if line.strip()})


@pytest.mark.parametrize(("name", "phrases"), PHRASES, ids=[n for n, _ in PHRASES])
def test_same_matches_line_by_line(name: str, phrases: Phrases) -> None:
    """Short texts too: in a long one, some other word of a rule is nearly always present
    somewhere, which hid a wrongly required word (test_a_word_only_some_…)."""
    for line in LINES:
        fast, whole = phrases.search(line), phrases.whole.search(line)
        assert (fast and fast.span()) == (whole and whole.span()), (name, line[:80])


def test_folding_keeps_every_case_insensitive_match() -> None:
    """Each character the regex engine takes for a letter of a phrase folds to that letter."""
    letters = {
        char
        for _name, phrases in PHRASES
        for part in phrases.parts
        for word in part.words or ()
        for char in word
    }
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    for letter in letters:
        for twin in re.findall(re.escape(letter), everything, re.IGNORECASE):
            assert fold(twin) == fold(letter), (letter, twin)
    assert len(fold("İSTANBUL ıſt")) == len("İSTANBUL ıſt")


def test_split_alternatives_respects_groups_classes_and_escapes() -> None:
    pattern = r"a(?:b|c)|[|(]x|\|y|[]|]z|(?<=q)w"
    assert split_alternatives(pattern) == ["a(?:b|c)", "[|(]x", r"\|y", "[]|]z", "(?<=q)w"]


def test_each_alternative_waits_for_its_rarest_word() -> None:
    phrases = Phrases(r"\bmelde[nt]?\s+ab|(?:can|won)['’]?t|\bi\s+would\s+like|\w+x|\d+")
    found = [(part.words, part.lead) for part in phrases.parts]
    assert [part.source for part in phrases.parts] == split_alternatives(phrases.pattern)
    assert found == [
        (("melde",), 0),
        (("can", "won"), 0),
        (("would",), None),  # after "i" and any amount of white space
        (("x",), None),
        (None, None),  # no word at all: always runs
    ]
    assert phrases.search("Ich melde mich an, ich würde gern") is None
    assert phrases.search("I WOULD   like it")
    assert phrases.search("i  would  like").span() == (0, 14)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"(?:cannot|\w+n't) go", "I won't go"),
        (r"\w(?:abcd|)", "q"),
        (r"(?:abc|\d)+x", "12x"),
        (r"\b(?:i|we)\s*(?:will|['’]ll)\s+join", "Ok, I'll join"),
    ],
)
def test_a_word_only_some_spellings_have_is_not_required(pattern: str, text: str) -> None:
    """Found by review: a group whose other branch starts with no literal made its literal
    branch's word look required, and the match was missed."""
    phrases = Phrases(pattern)
    fast, whole = phrases.search(text), phrases.whole.search(text)
    assert whole is not None
    assert fast is not None and fast.span() == whole.span()


def test_what_phrases_cannot_take_is_refused_at_first_use() -> None:
    with pytest.raises(ValueError, match="capturing"):
        Phrases(r"a(b)").search("ab")
    with pytest.raises(ValueError, match="match nothing"):
        Phrases(r"abc|x?").search("abc")


def test_nothing_is_parsed_before_first_use() -> None:
    """Importing the parser must not cost every process (and every empty poll) the rules."""
    phrases = Phrases(r"\bmelde[nt]?\s+ab|cannot\s+attend")
    assert "_plan" not in vars(phrases)
    assert phrases.search("I cannot attend") is not None
    assert "_plan" in vars(phrases)


def gate_texts() -> list[str]:
    """The corpus texts and their lines, and numbers, ordinals, addresses and diets in odd
    cases and neighbours."""
    rng = random.Random(11)
    pieces = ["1", "9", "0", "٣", "2.", "ERSTE", "Zweiten", "fİrst", "ſecond", "Werkſtatt",
              "workshop", "lab", "@", "x@y.de", "://", "WWW.", "wWw.x", "vegan", "Vegetarisch",
              "GLUTEN-free", "laktoſefrei", " ", ",", "\n", "die", "für die", "am", "und", ".", "_",
              "-", " - ", "aber", "é", "ß", "²", "Ⅻ", ";", "—"]  # fmt: skip
    made = ["".join(rng.choices(pieces, k=rng.randint(1, 14))) for _ in range(3000)]
    return TEXTS + LINES + made


def test_the_gates_before_costly_regexes_never_skip_a_match() -> None:
    """Each gate (a plain scan, a literal or `Phrases`) says no only where the case-insensitive
    regex behind it finds nothing, so skipping that regex changes no result."""
    from mailbot.parse import details, events, fields
    from mailbot.parse import text as text_rules

    for text in gate_texts():
        assert events.has_number(text) == bool(events._NUMBERED.search(text)), text
        assert fields._without_addresses(text) == fields._ADDRESSES.sub(" ", text), text
        if details._DIET.search(text):
            assert details._DIET_WORDS.search(text), text
        if events._LIST_BEFORE.search(text) or events._LIST_AFTER.search(text):
            assert events._NOUNS.search(text), text
        if events._LIST_COMMA.search(text):
            assert events._NUMBER_COMMA.search(text) or events._ORDINAL_WORD.search(text), text
        if events._ELLIPTIC.search(text):
            assert events._ELLIPTIC_HINT.search(text), text
        if text_rules._CLAUSE_BREAK.search(text):
            assert text_rules._CLAUSE_HINT.search(text), text
        for piece in (text, text[: len(text) // 2], text + "\n"):
            word = re.search(r"([\w-]+)$", piece)
            assert text_rules.last_word(piece) == (word.group(1) if word else ""), piece
