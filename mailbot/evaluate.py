"""Score the parser against a labelled folder: `python -m mailbot.evaluate DIR [--json]`.

DIR holds *.eml files and a labels.jsonl with the `mailbot parse --json` keys. Accuracy per
field (and the exact failures) is how parser changes are judged, so the comparison rules
live here once and the tests reuse them: e-mails, names and organisations are compared as
sets per mail (whitespace-normalised, case-insensitive), the rest by equality.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.models import Intent
from mailbot.parse import parse_mail

FIELDS = ("intent", "emails", "names", "organisations", "events", "lunch", "role", "language")


@dataclass
class Failure:
    file: str
    field: str
    expected: Any
    got: Any


@dataclass
class Report:
    total: int = 0
    correct: Counter[str] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def accuracy(self, name: str) -> float:
        return self.correct[name] / self.total if self.total else 0.0


def _norm(value: object) -> str:
    return " ".join(str(value).split()).casefold()


def _set(people: list[dict[str, Any]], key: str) -> set[str]:
    return {_norm(p[key]) for p in people if p.get(key)}


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The label/contract dict reduced to the values compared per field."""
    participants = record.get("participants") or []
    return {
        "intent": record.get("intent"),
        "emails": _set(participants, "email"),
        "names": _set(participants, "name"),
        "organisations": _set(participants, "organisation"),
        "events": sorted(record.get("events") or []),
        "lunch": record.get("lunch"),
        "role": record.get("role"),
        "language": record.get("language"),
    }


def load_labels(directory: Path) -> dict[str, dict[str, Any]]:
    labels: dict[str, dict[str, Any]] = {}
    with (directory / "labels.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                labels[record["file"]] = record
    return labels


def evaluate_dir(directory: str | Path) -> Report:
    """Parse every labelled mail in `directory` and compare it field by field."""
    directory = Path(directory)
    report = Report()
    for name, label in sorted(load_labels(directory).items()):
        path = directory / name
        if not path.is_file():
            continue
        got = parse_mail(path.read_bytes()).contract_dict(name)
        expected, actual = comparable(label), comparable(got)
        report.total += 1
        report.confusion[(str(expected["intent"]), str(actual["intent"]))] += 1
        for key in FIELDS:
            if expected[key] == actual[key]:
                report.correct[key] += 1
            else:
                report.failures.append(Failure(name, key, expected[key], actual[key]))
    return report


def _show(value: Any) -> str:
    if isinstance(value, set):
        return "{" + ", ".join(sorted(value)) + "}"
    return json.dumps(value, ensure_ascii=False)


def format_report(report: Report) -> str:
    lines = [f"mails: {report.total}", "", "field accuracy:"]
    for key in FIELDS:
        lines.append(
            f"  {key:<14} {report.accuracy(key):6.1%}  ({report.correct[key]}/{report.total})"
        )
    intents = [i.value for i in Intent]
    lines += ["", "intent confusion (rows: expected, columns: parsed):"]
    lines.append(" " * 11 + "".join(f"{i[:9]:>10}" for i in intents))
    for exp in intents:
        row = [report.confusion[(exp, got)] for got in intents]
        if any(row):
            lines.append(f"  {exp:<9}" + "".join(f"{n:>10}" for n in row))
    lines += ["", f"failures ({len(report.failures)}):"]
    for fail in report.failures:
        lines.append(
            f"  {fail.file}  {fail.field}: expected {_show(fail.expected)}, got {_show(fail.got)}"
        )
    return "\n".join(lines)


def summary(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready object (for CI logs and comparing parser versions)."""
    return {
        "mails": report.total,
        "accuracy": {key: round(report.accuracy(key), 4) for key in FIELDS},
        "confusion": {
            f"{exp}->{got}": n for (exp, got), n in sorted(report.confusion.items()) if n
        },
        "failures": [
            {"file": f.file, "field": f.field, "expected": _plain(f.expected), "got": _plain(f.got)}
            for f in report.failures
        ],
    }


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, set) else value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m mailbot.evaluate DIR [--json]", file=sys.stderr)
        return 2
    report = evaluate_dir(args[0])
    if as_json:
        print(json.dumps(summary(report), ensure_ascii=False, indent=1))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
