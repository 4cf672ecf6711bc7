"""Instructions per mail for reading and for settling: `python bench/instructions.py`.

Why instructions and not seconds: on the 2-core development machine the same rush takes 7 to
14 s from one quarter of an hour to the next (bench/rush.py), so a change that saves 5 % of
the CPU cannot be seen in timings without dozens of rounds. Valgrind's cachegrind counts the
instructions a process executes, which is the same from run to run (PYTHONHASHSEED fixed),
so two commits compare in two minutes. Instructions are not time (a cache miss or a system
call costs more than its count says), which is why bench/rush.py stays the measure of
record; this one tells whether a change to the Python code did less work.

Two parts, each the two steps of a rush that are Python through and through:

* **read**: `reading.read_mail` (parse, dedupe key) as the read-ahead runs it, over the
  seeded rush mails of bench/rushmail.py;
* **settle**: `Pipeline._settle_batch` (decide, store in SQLite, compose the replies into
  the outbox) in batches of 50, as the poll runs it after the read-ahead.

Each part runs twice under cachegrind: once up to its warm-up (imports, the first 100 mails,
which compile the regexes and templates) and once with N more mails; the difference divided
by N is printed. Needs `valgrind` (Debian: `apt-get install valgrind`). A benchmark, not a
test: it prints, nothing fails.

    python bench/instructions.py [--n 300] [--part read|settle]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from rushmail import REPO, rush_mails, write_config

WARM_UP = 100
BATCH = 50


def child(part: str, total: int, counted: int) -> None:
    """The measured process: prepare the same `total` mails in both runs (so that preparing
    them cancels out), then read or settle the warm-up and `counted` more."""
    from mailbot.config import load_config
    from mailbot.inbox.imap import FetchedMail
    from mailbot.reading import read_mail

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        servers = SimpleNamespace(port=1, password="x")  # the config needs them; no connection
        path = write_config(work, servers, servers, database=work / "db.sqlite3", capacity=total)  # type: ignore[arg-type]
        config = load_config(path)
        fetched = [
            FetchedMail(i + 1, m.raw, m.arrival, len(m.raw))
            for i, m in enumerate(rush_mails(total))
        ]
        used = fetched[: WARM_UP + counted]
        if part == "read":
            for mail in used:
                read_mail(config, mail, False)
            return
        from mailbot.pipeline import Pipeline, Prepared
        from mailbot.store.db import Store

        readings = [read_mail(config, m, False) for m in fetched]  # all of them, in both runs
        store = Store(config.database_url)
        pipeline = Pipeline(config, store)
        prepared = [
            Prepared(m, r, None, False) for m, r in zip(used, readings[: len(used)], strict=True)
        ]
        for start in range(0, len(prepared), BATCH):
            pipeline._settle_batch(prepared[start : start + BATCH], 1)
        store.close()


def instructions(part: str, total: int, counted: int) -> int:
    """Instructions cachegrind counted for one child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        argv = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            part,
            "--total",
            str(total),
            "--n",
            str(counted),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{part} failed under valgrind:\n{done.stderr[-2000:]}")
        summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None, "cachegrind wrote no summary line"
        return int(summary.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="mails counted after the warm-up")
    parser.add_argument("--part", choices=["read", "settle"], action="append")
    parser.add_argument("--child", choices=["read", "settle"], help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.total, args.n)
        # Leave without the interpreter's teardown: freeing what the counted mails left in
        # caches would be counted as their work.
        sys.stdout.flush()
        os._exit(0)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    for part in args.part or ["read", "settle"]:
        total = WARM_UP + args.n
        base = instructions(part, total, 0)
        full = instructions(part, total, args.n)
        per_mail = (full - base) / args.n
        print(f"{part:7s} {per_mail / 1e6:6.2f} M instructions per mail ({args.n} mails)")


if __name__ == "__main__":
    main()
