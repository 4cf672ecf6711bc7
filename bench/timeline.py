"""Where a rush's wall time goes, over time: `python bench/timeline.py [--n 2000]`.

`bench/rush.py` sums the CPU of each part over a whole rush; this shows it every quarter of a
second for one `mailbot poll --once`: the cores busy on the whole machine, the CPU of the poll
and its two helpers (`mailbot-read`, `mailbot-send`), and the replies at the sink so far. It
is how round 4 found the poll's start-up running on one core while the other waited, and
the end of a rush where the last replies go out while one core idles (docs/performance.md,
rounds 4 and 7). The sampling costs some CPU itself: read the shape, not the total.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rushmail import (
    REPO,
    Dovecot,
    SmtpSink,
    append_all,
    compile_mailbot,
    rush_mails,
    write_config,
)

TICKS = os.sysconf("SC_CLK_TCK")
PARTS = {"mailbot-read": "read", "mailbot-send": "send"}


@dataclass
class Sample:
    at: float
    busy: float  # CPU seconds of the whole machine so far
    parts: dict[str, float]  # CPU seconds so far of the poll and its helpers
    replies: int


def machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def process_cpu(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, parent pid) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[1])


def parts_of(poll: int) -> dict[str, float]:
    parts = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        found = process_cpu(pid)
        if found is None or (pid != poll and found[1] != poll):
            continue
        if pid == poll:
            parts["poll"] = found[0]
            continue
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        parts[PARTS.get(name, name)] = found[0]
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="mails in the rush (default 2000)")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    args = parser.parse_args()
    compile_mailbot()
    with tempfile.TemporaryDirectory(prefix="mailbot-timeline-") as tmp, Dovecot() as server:
        work = Path(tmp)
        with SmtpSink() as sink:
            append_all(server, rush_mails(args.n))
            config = write_config(
                work,
                server,
                sink,
                database=work / "timeline.sqlite3",
                capacity=max(1, args.n // 2),
            )
            argv = [sys.executable, "-m", "mailbot", "poll", "--once", "--config", str(config)]
            started = time.monotonic()
            with open(work / "mailbot.log", "w") as log:
                poll = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO)
                samples = []
                while poll.poll() is None:
                    samples.append(
                        Sample(
                            time.monotonic() - started,
                            machine_busy(),
                            parts_of(poll.pid),
                            len(sink.received),
                        )
                    )
                    time.sleep(args.every)
            if poll.returncode != 0:
                print((work / "mailbot.log").read_text()[-3000:], file=sys.stderr)
                return 1
            wall = time.monotonic() - started
    print(f"N = {args.n}: poll --once took {wall:.2f} s; CPU in cores, per interval")
    print("     t   busy   poll   read   send  replies")
    for before, now in itertools.pairwise(samples):
        cores = [rate(before, now, part) for part in ("poll", "read", "send")]
        busy = (now.busy - before.busy) / (now.at - before.at)
        print(f"{now.at:6.2f} {busy:6.2f} {' '.join(cores)} {now.replies:8d}")
    return 0


def rate(before: Sample, now: Sample, part: str) -> str:
    """The cores `part` used between two samples, "-" while it does not exist."""
    if part not in now.parts:
        return "     -"
    used = now.parts[part] - before.parts.get(part, 0.0)
    return f"{used / (now.at - before.at):6.2f}"


if __name__ == "__main__":
    sys.exit(main())
