"""The sender alone against a plain aiosmtplib loop: `python bench/sender.py [--n 2000]`.

In a rush the sender and the SMTP server take turns for every reply, and that ping-pong is
the longest chain of the whole run (bench/rush.py): whatever the sender does between two
replies makes the rush longer. This queues N replies of the rush's size (8.6 KiB) in a fresh
database and sends them to an aiosmtpd sink on loopback, alternately

- **plain**: one connection, `sendmail` for each reply, nothing else (the limit's way), and
- **mailbot**: `send_outbox` as the sender beside a poll runs it (claims of 64 without
  waiting for the write lock, sent marks written 16 at a time, each reply handed over by
  `mailbot.send.transfer.deliver`),

each in its own process, and prints for each the wall and CPU time of the sending alone
(after imports and queueing) and how long the sender spent between the end of one mail
transaction (`sendmail`, `deliver`) and the start of the next. Round 6 found the outbox rows
with the reply bytes in them costing the sender 0.66 s of such gaps per 2,000 replies;
0.46 s with the bytes in a table of their own. A benchmark, not a test: it prints, nothing
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

REPLY_LINES = 113  # lines of 76 characters: 8.6 KiB, the rush's average reply


def reply_bytes() -> bytes:
    lines = [os.urandom(38).hex().encode() for _ in range(REPLY_LINES)]
    return b"Subject: Anmeldung\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"


def child(mode: str, database: Path, port: int, n: int) -> dict[str, float]:
    """Queue n replies, send them all one way, and time the sending."""
    import aiosmtplib
    from helpers import queue_replies

    from mailbot.config import SmtpSettings
    from mailbot.send import smtp
    from mailbot.send.smtp import send_outbox
    from mailbot.store.db import Store

    store = Store(f"sqlite:///{database}")
    queue_replies(store, 0, n, datetime.now(UTC), reply_bytes())
    spans: list[tuple[float, float]] = []

    def timed(send: Any) -> Any:
        async def timed_send(*args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            result = await send(*args, **kwargs)
            spans.append((began, time.perf_counter()))
            return result

        return timed_send

    # One mail transaction each: the plain loop's `sendmail`, the sender's `deliver`.
    if mode == "plain":
        aiosmtplib.SMTP.sendmail = timed(aiosmtplib.SMTP.sendmail)  # type: ignore[method-assign]
    else:
        smtp.deliver = timed(smtp.deliver)  # type: ignore[attr-defined]

    async def plain() -> None:
        with store.transaction() as conn:
            rows = conn.exec_driver_sql(
                "SELECT recipients, raw FROM outbox JOIN outbox_bodies ON outbox_id = id"
            ).all()
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await client.connect()
        for recipients, body in rows:
            await client.sendmail("anmeldung@example.org", json.loads(recipients), body)
        await client.quit()

    async def mailbot() -> None:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none")
        report = await send_outbox(
            store,
            settings,
            "anmeldung@example.org",
            lambda: datetime.now(UTC),
            hourly_cap=10 * n,
            wait_for_lock=False,
            keep_going=lambda: len(spans) < n,
        )
        assert report.sent == n, report

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(plain() if mode == "plain" else mailbot())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    gaps = sum(spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1))
    return {"wall": wall, "cpu": cpu, "between": gaps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="replies (default 2000)")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each (default 4)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, database, port = args.child
        print(json.dumps(child(mode, Path(database), int(port), args.n)))
        return 0

    from servers import SmtpSink

    results: dict[str, list[dict[str, float]]] = {"plain": [], "mailbot": []}
    with SmtpSink() as sink, tempfile.TemporaryDirectory(prefix="mailbot-sender-") as tmp:
        for round_no in range(args.rounds):
            # Alternating, and the order too: this machine's speed drifts from minute to minute.
            order = ("plain", "mailbot") if round_no % 2 == 0 else ("mailbot", "plain")
            for mode in order:
                sink.clear()
                database = Path(tmp) / f"{mode}-{round_no}.sqlite3"
                argv = [sys.executable, __file__, "--n", str(args.n), "--child", mode,
                        str(database), str(sink.port)]  # fmt: skip
                out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
                if len(sink) != args.n:
                    raise RuntimeError(f"the sink got {len(sink)} of {args.n} replies")
                result = json.loads(out)
                results[mode].append(result)
                print(f"{mode:8} sending {result['wall']:.2f} s, CPU {result['cpu']:.2f} s, "
                      f"between replies {result['between']:.2f} s", flush=True)  # fmt: skip
    print(f"\nN = {args.n} replies of {len(reply_bytes()) / 1024:.1f} KiB, "
          f"{args.rounds} runs each (medians)")  # fmt: skip
    for mode, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in ("wall", "cpu", "between")}
        print(f"  {mode:8} sending {med['wall']:.2f} s, CPU {med['cpu']:.2f} s, "
              f"between replies {med['between']:.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
