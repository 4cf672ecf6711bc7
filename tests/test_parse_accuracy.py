"""Accuracy targets of issue 3, on the shared dev corpus and on the held-out mails in the repo.

`registrations-dev` is what the first parser was written against; `tests/data/parse-holdout`
was written before the rules were generalised, to catch rules that only memorise the dev set.
The holdout thresholds sit below the dev ones on purpose: after the rules were improved with
its failures in view it is no longer unseen, and a new unseen set is expected to score lower.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_parse_corpora import CORPORA

from mailbot.evaluate import evaluate_dir, format_report

HOLDOUT = Path(__file__).parent / "data" / "parse-holdout"
HOLDOUT_LATE = Path(__file__).parent / "data" / "parse-holdout-late"

DEV_TARGETS = {
    "intent": 0.98,
    "emails": 0.98,
    "names": 0.95,
    "organisations": 0.90,
    "events": 0.95,
    "lunch": 0.95,
    "role": 0.95,
    "language": 0.95,
}
HOLDOUT_TARGETS = {
    "intent": 0.95,
    "emails": 0.93,
    "names": 0.90,
    "organisations": 0.85,
    "events": 0.93,
    "lunch": 0.90,
    "role": 0.90,
    "language": 0.95,
}


def _check(directory: Path, targets: dict[str, float], minimum: int) -> None:
    report = evaluate_dir(directory)
    assert report.total >= minimum
    low = {f: round(report.accuracy(f), 3) for f, t in targets.items() if report.accuracy(f) < t}
    assert not low, f"below target: {low}\n{format_report(report)}"


@pytest.mark.skipif(not CORPORA.is_dir(), reason="shared corpora not found")
def test_dev_targets() -> None:
    _check(CORPORA / "registrations-dev", DEV_TARGETS, 60)


def test_holdout_targets() -> None:
    _check(HOLDOUT, HOLDOUT_TARGETS, 40)


def test_late_holdout_targets() -> None:
    # Twelve mails: one miss is 8.3 %, so the bar is what the first unseen run scored.
    _check(HOLDOUT_LATE, dict.fromkeys(HOLDOUT_TARGETS, 0.83), 12)


def test_evaluate_prints_a_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mailbot.evaluate import main

    assert main([str(HOLDOUT), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mails"] >= 40
    assert set(summary["accuracy"]) >= {"intent", "emails", "names", "organisations"}
    assert main(["/nonexistent"]) == 2
