"""How fast is parse_mail compared with the stdlib parse alone? `python bench/parse_speed.py`.

Reads every mail-like file under the shared corpora (or the folders given as arguments) into
memory, then times `email.message_from_bytes` and `mailbot.parse.parse_mail` over the same
bytes (CPU time of this process, best of a few rounds, so other load on the machine
skews less), and prints mails per second and the ratio. Issue 3's target is a
ratio of at most 3: the parser may cost three bare stdlib parses, not more. A benchmark, not a
test: timings depend on the machine, so nothing here fails.
"""

from __future__ import annotations

import argparse
import email
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailbot.parse import parse_mail  # noqa: E402

NOT_MAIL = ("readme", "license", "licence", "notice", "copying", "labels")


def corpus_files(roots: list[Path]) -> list[Path]:
    return sorted(
        p
        for root in roots
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in {".eml", ".msg", ".txt", ""}
        and not p.name.lower().startswith(NOT_MAIL)
    )


def _run(func: Callable[[bytes], object], mails: list[bytes]) -> float:
    start = time.process_time()
    for raw in mails:
        func(raw)
    return time.process_time() - start


def best_times(mails: list[bytes], rounds: int) -> tuple[float, float]:
    """Best stdlib and best parse_mail time; rounds alternate so drift hits both alike."""
    parse_mail(mails[0])  # compile the parser's regular expressions outside the timing
    stdlib = full = float("inf")
    for _ in range(rounds):
        stdlib = min(stdlib, _run(email.message_from_bytes, mails))
        full = min(full, _run(parse_mail, mails))
    return stdlib, full


def main(argv: list[str] | None = None) -> int:
    default = Path(os.environ.get("MAILBOT_CORPORA") or REPO.parent / "shared" / "corpora")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[default])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    mails = [p.read_bytes() for p in corpus_files(args.roots)]
    if not mails:
        print(f"no mails found under {', '.join(map(str, args.roots))}", file=sys.stderr)
        return 2
    size = sum(map(len, mails)) / 1e6
    stdlib, full = best_times(mails, args.rounds)
    print(f"mails: {len(mails)} ({size:.1f} MB), best of {args.rounds} rounds")
    print(f"email.message_from_bytes: {len(mails) / stdlib:8.0f} mails/s  ({stdlib:.2f} s)")
    print(f"mailbot parse_mail:       {len(mails) / full:8.0f} mails/s  ({full:.2f} s)")
    print(f"ratio: {full / stdlib:.2f}x the stdlib parse (target: at most 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
