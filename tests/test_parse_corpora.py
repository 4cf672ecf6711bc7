"""The parser against the shared mail corpora: accuracy, robustness and loop safety.

The corpora live outside the repository (CI copies `shared/` beside the clone), found via
$MAILBOT_CORPORA or `<repo>/../shared/corpora`; the tests skip when neither exists.
"""

from __future__ import annotations

import csv
import os
import time
from functools import cache
from pathlib import Path

import pytest

from mailbot.evaluate import evaluate_dir, format_report
from mailbot.models import Intent, ParsedMail
from mailbot.parse import parse_mail

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("MAILBOT_CORPORA") or REPO.parent / "shared" / "corpora")

pytestmark = pytest.mark.skipif(
    not CORPORA.is_dir(),
    reason=f"mail corpora not found at {CORPORA} (set MAILBOT_CORPORA to the corpora folder)",
)

MAIL_SUFFIXES = {".eml", ".msg", ".txt", ""}
NOT_MAIL = ("readme", "license", "licence", "notice", "copying", "labels")

# Labelled "bounce" by the corpus import, but they are plain spam: upstream's test for them
# (t/spam-lots-of-bogus-addresses.t etc.) describes "a non-bounce spam message [that] is parsed
# as a bounce" and pins that known misbehaviour of the Perl module, not a property of the mail.
MISLABELLED = {
    "perl-bounceparser/corpus/spam-bogus-email-in-report.msg",
    "perl-bounceparser/corpus/spam-lots-of-bogus-addresses.msg",
    "perl-bounceparser/corpus/spam-with-image.msg",
}
MACHINE = {Intent.BOUNCE, Intent.AUTOREPLY}
ACTIONABLE = {Intent.REGISTER, Intent.CANCEL, Intent.UPDATE}


def mail_files() -> list[Path]:
    return sorted(
        p
        for p in CORPORA.rglob("*")
        if p.is_file()
        and p.suffix.lower() in MAIL_SUFFIXES
        and not p.name.lower().startswith(NOT_MAIL)
        and "license" not in p.name.lower()
    )


@cache
def parsed_corpus() -> dict[str, tuple[ParsedMail, float]]:
    """Every mail-like file parsed once (shared by the tests below), with its parse time."""
    results: dict[str, tuple[ParsedMail, float]] = {}
    for path in mail_files():
        start = time.perf_counter()
        parsed = parse_mail(path.read_bytes())
        results[path.relative_to(CORPORA).as_posix()] = (parsed, time.perf_counter() - start)
    return results


def labels() -> dict[str, str]:
    """file (relative to CORPORA) -> kind, from every corpus's labels.tsv."""
    found: dict[str, str] = {}
    for tsv in sorted(CORPORA.glob("*/labels.tsv")):
        with tsv.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle, delimiter="\t"):
                if len(row) >= 2 and row[0] != "file":
                    found[f"{tsv.parent.name}/{row[0]}"] = row[1].strip()
    return found


def test_registrations_dev_accuracy() -> None:
    report = evaluate_dir(CORPORA / "registrations-dev")
    assert report.total >= 60
    summary = format_report(report)
    assert report.accuracy("intent") >= 0.9, summary
    assert report.accuracy("emails") >= 0.9, summary


def test_every_corpus_file_parses_without_error() -> None:
    results = parsed_corpus()
    assert len(results) > 1000
    errors = {
        f: p.needs_review
        for f, (p, _) in results.items()
        if (p.needs_review or "").startswith("parser error")
    }
    assert not errors, errors
    slow = {f: round(t, 2) for f, (_, t) in results.items() if t > 2.0}
    assert not slow, f"bounded work violated: {slow}"


def test_bounces_and_autoreplies_are_never_answered() -> None:
    results = parsed_corpus()
    wanted = {f: k for f, k in labels().items() if k in ("bounce", "autoreply")}
    assert len(wanted) > 900
    missing = [f for f in wanted if f not in results]
    assert not missing, missing
    answerable = {
        f: results[f][0].intent.value
        for f in wanted
        if f not in MISLABELLED
        and results[f][0].intent not in MACHINE
        and not results[f][0].headers.no_reply_reason
    }
    assert not answerable, answerable


def test_spam_and_ham_are_never_registrations() -> None:
    results = parsed_corpus()
    spam_ham = {
        f
        for f, k in labels().items()
        if f.startswith("apache-spamassassin-testdata/") and k in ("spam", "ham")
    }
    assert len(spam_ham) > 100
    taken = {f: results[f][0].intent.value for f in spam_ham if results[f][0].intent in ACTIONABLE}
    assert not taken, taken


def test_cheap_precheck_changes_no_intent() -> None:
    """`fields.classify` skips its rules when no workshop stem occurs; prove that is lossless."""
    from mailbot.parse import fields
    from mailbot.parse.mime import body_text, header, parse_bytes
    from mailbot.parse.quotes import split_quoted

    skipped = 0
    for path in mail_files():
        msg = parse_bytes(path.read_bytes())
        own, subject = split_quoted(body_text(msg).text).own, header(msg, "Subject")
        if not fields.may_concern_us(own, subject):
            skipped += 1
            assert fields.classify_all_rules(own, subject, True) == (Intent.OTHER, None), path
    assert skipped > 300


def test_machine_mail_is_recognised_as_such() -> None:
    """Beyond 'never answered': bounces are bounces (with the failed address), auto-replies
    auto-replies, so the organiser learns which participant address fails."""
    results = parsed_corpus()
    kinds = labels()
    bounces = [f for f, k in kinds.items() if k == "bounce" and f not in MISLABELLED]
    autoreplies = [f for f, k in kinds.items() if k == "autoreply"]
    as_bounce = [f for f in bounces if results[f][0].intent == Intent.BOUNCE]
    with_address = [f for f in as_bounce if results[f][0].bounced_addresses]
    as_autoreply = [f for f in autoreplies if results[f][0].intent == Intent.AUTOREPLY]
    assert len(as_bounce) >= 0.97 * len(bounces), (len(as_bounce), len(bounces))
    assert len(with_address) >= 0.9 * len(as_bounce), (len(with_address), len(as_bounce))
    assert len(as_autoreply) >= 0.9 * len(autoreplies), (len(as_autoreply), len(autoreplies))
