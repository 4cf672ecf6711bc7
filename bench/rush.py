"""How close does mailbot get to the mail servers in a registration rush? (issue 7)

    python bench/rush.py [--n 2000] [--repeat 3] [--profile] [--batch-size 50]

Starts its own Dovecot and SMTP sink on loopback (tests/servers.py), fills the INBOX with N
registration mails (bench/rushmail.py: forms, de/en prose, HTML, two people, the series,
cancellations, second registrations, out-of-office replies; capacity N/2 per workshop, so
there are confirmations, waiting-list answers and promotions), then measures, per round:

* **mailbot**: a fresh SQLite database and `mailbot poll --once` as a subprocess, run again
  until every mail is settled and the outbox is empty (one run normally does it all; the
  report says how many). Time is wall time over all invocations. Memory: the peak RSS of the
  largest single process (os.wait4), and the peak of the summed RSS of the poll and its two
  helper processes (read-ahead and sender, used for a backlog of more than one batch),
  sampled from /proc every 100 ms. CPU counts the helpers too, and the report splits it by
  process, with the CPU Dovecot and the sink (this script) used meanwhile.
* **the limit**: the same N mails, from a second folder filled with them before the round,
  fetched with imapclient as mailbot fetches them (UID SEARCH, then BODY.PEEK[] + INTERNALDATE + RFC822.SIZE in batches of
  `batch_size`), then the very replies mailbot produced (same count, same bytes, read from its
  outbox before the clock starts) sent with aiosmtplib over one connection. No parsing, no
  rules, no database. It runs in a child process too, so that neither side shares a GIL with
  the sink thread of this script. The moves mailbot also does are timed separately ("MOVE floor"), not
  counted in the limit, because issue 7 defines the limit as fetch + send.

The limit runs right after mailbot, with nothing in between: the speed of this kind of
virtual machine drifts by a third within a minute, and a refill between the two (15 s) made
the ratio of one round swing between 1.5 and 1.9 with the same code.

Why a subprocess: it is what a cron user runs, and the peak memory of a separate process is
not blurred by this script's own (which holds the sink's copies of every reply).

`--profile` adds one more mailbot run under cProfile (in a child, `poll_inbox()` and `send()`
called in the main thread, see `profile_child`), writes bench/rush-<n>.prof and prints the
top 25 by cumulative time. Its wall time is inflated by the profiler and not in the medians.
`--repeat 0 --profile` only profiles.

A benchmark, not a test: nothing here fails on a slow machine. Other load on the machine
changes the figures, which is why rounds are repeated and medians printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
from imapclient import IMAPClient
from rushmail import (
    REPO,
    Dovecot,
    SmtpSink,
    append_all,
    compile_mailbot,
    rush_mails,
    write_config,
)

from mailbot.inbox.imap import FETCH_ITEMS

LIMIT_FOLDER = "Limit"  # the limit's copy of the rush; mailbot works on the INBOX
LIMIT_DONE = "LimitDone"

PYTHON = sys.executable
SAMPLE_SECONDS = 0.1
MAX_POLLS = 200


@dataclass
class MailbotRun:
    seconds: float
    polls: int
    peak_rss_kib: int
    mails: int
    replies: int
    states: dict[str, int] = field(default_factory=dict)
    reply_bytes: int = 0
    cpu_seconds: float = 0.0
    peak_tree_kib: int = 0  # poll process plus its helper processes, summed
    cpu: dict[str, float] = field(default_factory=dict)  # by part, see ServerCpu and run_child
    started: float = 0.0  # time.monotonic() at the start
    first_reply: float = 0.0  # seconds from the start until the sink had the first reply
    last_reply: float = 0.0  # … and the last one


@dataclass
class LimitRun:
    fetch_seconds: float
    send_seconds: float
    move_seconds: float
    fetched_bytes: int
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.fetch_seconds + self.send_seconds


@dataclass
class ChildRun:
    code: int
    peak_rss_kib: int  # the largest single process (os.wait4)
    cpu_seconds: float  # the child and its helpers
    peak_tree_kib: int  # the child and its helpers together, sampled
    cpu_by_name: dict[str, float]  # sampled: "python" (the child), "mailbot-read", "mailbot-send"


def run_child(argv: list[str], log_path: Path) -> ChildRun:
    """Run one child to its end, with its memory and CPU and that of its helper processes.

    os.wait4 gives the rusage of exactly this child and the children it waited for
    (RUSAGE_CHILDREN would be the maximum over every child this script ever waited for); its
    ru_maxrss is the largest single process, so the sum over the process tree (the poll and
    its read-ahead and sender helpers) is sampled from /proc every 100 ms alongside (each sample costs about 1 ms of CPU, which
    the machine then lacks for mailbot, so not more often), and so is
    each process's CPU time (by process name: the helpers name themselves).
    """
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO)
        peaks = [0, 0, 0]  # the poll process, its largest helper, all together
        cpu: dict[int, tuple[str, float]] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                rss, seen = sample_tree(proc.pid)
                peaks[:] = map(max, peaks, rss)
                cpu.update(seen)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    log_line = f"sampled peak RSS: poll {peaks[0]} KiB, largest helper {peaks[1]} KiB\n"
    with log_path.open("a") as log_text:
        log_text.write(log_line)
    by_name: dict[str, float] = {}
    for name, seconds in cpu.values():
        by_name[name] = by_name.get(name, 0.0) + seconds
    return ChildRun(
        proc.returncode,
        int(usage.ru_maxrss),
        usage.ru_utime + usage.ru_stime,
        peaks[2],
        by_name,
    )


TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, reaped: bool = False) -> tuple[str, float]:
    """(name, CPU seconds) of a live process from /proc/<pid>/stat; with `reaped`, the
    children it has waited for count too."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = sum(int(f) for f in fields[11 : 15 if reaped else 13])  # utime stime [cutime cstime]
    return name, ticks / TICKS


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it that is alive now."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        found.append(current)
    return found


def sample_tree(pid: int) -> tuple[tuple[int, int, int], dict[int, tuple[str, float]]]:
    """VmRSS of a process and its descendants, from /proc (0 for what has just ended):
    (the process itself, its largest descendant, all of them together), and each one's
    (name, CPU seconds)."""
    own = largest_helper = total = 0
    cpu: dict[int, tuple[str, float]] = {}
    for current in descendants(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            rss = int(status.split("VmRSS:")[1].split()[0]) if "VmRSS:" in status else 0
            cpu[current] = proc_cpu(current)
        except (OSError, ValueError, IndexError):
            continue
        total += rss
        if current == pid:
            own = rss
        else:
            largest_helper = max(largest_helper, rss)
    return (own, largest_helper, total), cpu


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a server and all its processes, the ended ones included."""
    total = 0.0
    for current in descendants(pid):
        try:
            total += proc_cpu(current, reaped=True)[1]
        except (OSError, ValueError, IndexError):
            continue
    return total


def db_counts(database: Path) -> tuple[int, int, int, dict[str, int]]:
    """(messages, outbox rows, unsent outbox rows, messages by state) of mailbot's database."""
    with sqlite3.connect(database) as db:
        mails = db.execute("select count(*) from messages").fetchone()[0]
        queued = db.execute("select count(*) from outbox").fetchone()[0]
        unsent = db.execute(
            "select count(*) from outbox where sent_at is null and failed_at is null"
        ).fetchone()[0]
        states = dict(db.execute("select state, count(*) from messages group by state").fetchall())
    return int(mails), int(queued), int(unsent), states


class ServerCpu:
    """CPU the servers use while something runs: Dovecot with all its processes, and this
    script, which is mostly the SMTP sink's thread (and the /proc sampler)."""

    def __init__(self, server: Dovecot) -> None:
        self.dovecot_pid = server.pid
        # The filling session's imap process may still be ending: its CPU moves into the
        # master's when the master reaps it, so a baseline read meanwhile could miss it and
        # count the whole fill as the run's (seen once: "Dovecot 8.6 s" for the limit).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            proc_name(pid) == "imap" for pid in descendants(self.dovecot_pid)
        ):
            time.sleep(0.05)
        self.dovecot = tree_cpu_seconds(self.dovecot_pid)
        self.sink = time.process_time()
        self.steal = stolen_seconds()

    def used(self) -> dict[str, float]:
        return {
            "dovecot": tree_cpu_seconds(self.dovecot_pid) - self.dovecot,
            "sink": time.process_time() - self.sink,
            "steal": stolen_seconds() - self.steal,
        }


def stolen_seconds() -> float:
    """CPU seconds the hypervisor gave to others while this VM had work ("steal" in
    /proc/stat; 0 on bare metal). On the shared VM of round 5 the same rush took 12-18 s of
    CPU from one round to the next; this says how much of a slow round the host took."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / TICKS if len(fields) > 8 else 0.0
    except OSError:
        return 0.0


def run_mailbot(config: Path, database: Path, n: int, work: Path, server: Dovecot) -> MailbotRun:
    """`mailbot poll --once` until all N mails are settled and the outbox is empty."""
    log_path = work / "mailbot.log"
    peak = peak_tree = polls = 0
    cpu = 0.0
    by_part: dict[str, float] = {}
    servers = ServerCpu(server)
    started_monotonic = time.monotonic()  # the sink stamps replies with this clock
    started = time.perf_counter()
    while polls < MAX_POLLS:
        polls += 1
        argv = [PYTHON, "-m", "mailbot", "poll", "--once", "--config", str(config)]
        child = run_child(argv, log_path)
        code = child.code
        peak, cpu = max(peak, child.peak_rss_kib), cpu + child.cpu_seconds
        peak_tree = max(peak_tree, child.peak_tree_kib)
        for name, seconds in child.cpu_by_name.items():
            by_part[name] = by_part.get(name, 0.0) + seconds
        if code != 0:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mailbot poll --once exited {code}:\n{tail}")
        mails, _queued, unsent, _ = db_counts(database)
        if mails >= n and unsent == 0:
            break
    seconds = time.perf_counter() - started
    by_part |= servers.used()
    mails, queued, unsent, states = db_counts(database)
    if mails < n or unsent:
        raise RuntimeError(f"mailbot did not finish: {mails}/{n} mails, {unsent} replies unsent")
    return MailbotRun(
        seconds,
        polls,
        peak,
        mails,
        queued,
        states,
        cpu_seconds=cpu,
        peak_tree_kib=peak_tree,
        cpu=by_part,
        started=started_monotonic,
    )


def reply_times(sink: SmtpSink, started: float) -> tuple[float, float]:
    """When the first and the last reply reached the sink, in seconds from `started`: how
    soon participants hear back, and how long the sending goes on after the last mail."""
    stamps = [item.at for item in sink.received]
    return (min(stamps) - started, max(stamps) - started) if stamps else (0.0, 0.0)


def profile_child(config_path: Path, out: Path) -> None:
    """One whole rush under cProfile, in a child process like `poll --once`.

    The same two stages `Pipeline.cycle_here()` runs, `poll_inbox()` then `send()`, sending
    until the outbox is empty, with the helper processes off (`parallel_backlog = false`):
    cProfile sees only its own process, and parsing and sending would happen in the helpers.
    The parser is imported before the profile starts, as a helper would have it.
    """
    import mailbot.parse  # noqa: F401  (see the docstring)
    from mailbot.config import load_config
    from mailbot.pipeline import Pipeline
    from mailbot.store.db import Store

    config = load_config(config_path)
    # Everything in this process, so that cProfile sees parsing and sending too.
    serial = config.mailbot.model_copy(update={"parallel_backlog": False})
    config = config.model_copy(update={"mailbot": serial})
    store = Store(config.database_url)
    pipeline = Pipeline(config, store)

    async def send_all() -> None:
        while (await pipeline.send()).sent:
            pass

    profiler = cProfile.Profile()
    profiler.enable()
    pipeline.poll_inbox()
    asyncio.run(send_all())
    profiler.disable()
    profiler.dump_stats(str(out))
    store.close()


def run_profile(config: Path, database: Path, n: int, work: Path, out: Path) -> float:
    argv = [PYTHON, str(Path(__file__).resolve()), "--profile-child", str(config), str(out)]
    started = time.perf_counter()
    if run_child(argv, work / "profile.log").code != 0:
        raise RuntimeError("profile child failed:\n" + (work / "profile.log").read_text()[-3000:])
    mails, _queued, unsent, _ = db_counts(database)
    if mails < n or unsent:
        raise RuntimeError(f"profiled run did not finish: {mails}/{n} mails, {unsent} unsent")
    return time.perf_counter() - started


def outbox_replies(database: Path) -> list[tuple[list[str], bytes]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "select recipients, raw from outbox join outbox_bodies on outbox_id = id order by id"
        ).fetchall()
    return [(json.loads(r), bytes(raw)) for r, raw in rows]


def limit_child(spec: dict[str, Any]) -> dict[str, float]:
    """The servers' floor, in its own process like mailbot: fetch as mailbot does, send, no work.

    The replies are read from mailbot's outbox before the clock starts, so the same count and
    the same bytes go out. Runs in a child so the SMTP client does not share a GIL with the
    sink thread of the parent, exactly as mailbot's `poll --once` does not.
    """
    replies = outbox_replies(Path(spec["database"]))
    fetched = 0
    batch_size = int(spec["batch_size"])
    started = time.perf_counter()
    imap = IMAPClient(spec["host"], spec["imap_port"], ssl=False, timeout=120)
    imap.normalise_times = False
    imap.login(spec["username"], spec["password"])
    imap.select_folder(LIMIT_FOLDER)
    uids = sorted(imap.search(["UID", "1:*"]))
    for start in range(0, len(uids), batch_size):
        response = imap.fetch(uids[start : start + batch_size], FETCH_ITEMS)
        fetched += sum(len(data[b"BODY[]"]) for data in response.values())
    fetch_seconds = time.perf_counter() - started
    # Not part of the limit: what moving every mail costs the server, batch by batch.
    imap.create_folder(LIMIT_DONE)
    moved_at = time.perf_counter()
    for start in range(0, len(uids), batch_size):
        batch = uids[start : start + batch_size]
        imap.add_flags(batch, [b"\\Seen"])
        imap.move(batch, LIMIT_DONE)
    move_seconds = time.perf_counter() - moved_at
    imap.logout()

    async def send() -> float:
        began = time.perf_counter()
        client = aiosmtplib.SMTP(hostname=spec["host"], port=spec["smtp_port"], timeout=120)
        await client.connect()
        for recipients, raw in replies:
            await client.sendmail("anmeldung@ils-forschung.example", recipients, raw)
        await client.quit()
        return time.perf_counter() - began

    send_seconds = asyncio.run(send())
    return {
        "fetch_seconds": fetch_seconds,
        "send_seconds": send_seconds,
        "move_seconds": move_seconds,
        "fetched_bytes": fetched,
        "replies": len(replies),
    }


def run_limit(
    server: Dovecot, sink: SmtpSink, database: Path, batch_size: int, work: Path
) -> LimitRun:
    spec = {
        "host": server.host,
        "imap_port": server.port,
        "username": server.username,
        "password": server.password,
        "smtp_port": sink.port,
        "database": str(database),
        "batch_size": batch_size,
    }
    out = work / "limit.json"
    argv = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--limit-child",
        json.dumps(spec),
        "--limit-out",
        str(out),
    ]
    servers = ServerCpu(server)
    child = run_child(argv, work / "limit.log")
    if child.code != 0:
        raise RuntimeError(
            f"limit child exited {child.code}:\n" + (work / "limit.log").read_text()[-3000:]
        )
    result = json.loads(out.read_text())
    if len(sink) != result["replies"]:
        raise RuntimeError(f"sink got {len(sink)} of {result['replies']} limit replies")
    return LimitRun(
        result["fetch_seconds"],
        result["send_seconds"],
        result["move_seconds"],
        result["fetched_bytes"],
        {"client": child.cpu_seconds} | servers.used(),
    )


def fill(server: Dovecot, n: int) -> float:
    """An empty account, then the rush in the INBOX (for mailbot) and in LIMIT_FOLDER."""
    server.reset()
    began = time.perf_counter()
    append_all(server, rush_mails(n))
    seconds = time.perf_counter() - began
    append_all(server, rush_mails(n), LIMIT_FOLDER)
    return seconds


def print_profile(path: Path, top: int = 25) -> None:
    print(f"cProfile of mailbot (poll_inbox + send until the outbox is empty): {path}")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="mails in the rush (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--capacity", type=int, help="seats per workshop (default n/2)")
    parser.add_argument("--batch-size", type=int, default=50, help="[imap] batch_size")
    parser.add_argument("--profile", action="store_true", help="one more round under cProfile")
    parser.add_argument(
        "--profile-out", type=Path, help="where the .prof goes (default bench/rush-<n>.prof)"
    )
    parser.add_argument("--limit-child", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile_child:
        profile_child(*args.profile_child)
        return 0
    if args.limit_child:
        args.limit_out.write_text(json.dumps(limit_child(json.loads(args.limit_child))))
        return 0
    n, capacity = args.n, args.capacity or max(1, args.n // 2)
    compile_mailbot()

    mailbot_runs: list[MailbotRun] = []
    limit_runs: list[LimitRun] = []
    with tempfile.TemporaryDirectory(prefix="mailbot-rush-") as tmp, Dovecot() as server:
        work = Path(tmp)
        with SmtpSink() as sink:

            def config_for(database: Path) -> Path:
                return write_config(
                    work,
                    server,
                    sink,
                    database=database,
                    capacity=capacity,
                    batch_size=args.batch_size,
                )

            for round_no in range(args.repeat):
                database = work / f"round-{round_no}.sqlite3"
                config = config_for(database)
                fill_seconds = fill(server, n)
                sink.clear()
                run = run_mailbot(config, database, n, work, server)
                run.first_reply, run.last_reply = reply_times(sink, run.started)
                if len(sink) != run.replies:
                    raise RuntimeError(f"sink got {len(sink)} replies, outbox has {run.replies}")
                run.reply_bytes = sum(len(raw) for _, raw in outbox_replies(database))
                sink.clear()
                limit = run_limit(server, sink, database, args.batch_size, work)
                sink.clear()
                database.unlink()
                mailbot_runs.append(run)
                limit_runs.append(limit)
                print(
                    f"round {round_no + 1}: fill {fill_seconds:.1f} s | mailbot {run.seconds:.2f} s "
                    f"({run.polls} × poll --once, CPU {run.cpu_seconds:.1f} s, "
                    f"peak RSS {run.peak_rss_kib / 1024:.1f} MiB, all processes "
                    f"{run.peak_tree_kib / 1024:.1f} MiB) | "
                    f"limit {limit.seconds:.2f} s (fetch {limit.fetch_seconds:.2f} + send "
                    f"{limit.send_seconds:.2f}; MOVE {limit.move_seconds:.2f}) | "
                    f"ratio {run.seconds / limit.seconds:.2f} | replies from "
                    f"{run.first_reply:.1f} s to {run.last_reply:.1f} s | steal "
                    f"{run.cpu.get('steal', 0.0):.1f} s / {limit.cpu.get('steal', 0.0):.1f} s",
                    flush=True,
                )
            if mailbot_runs:
                report(n, capacity, args.batch_size, mailbot_runs, limit_runs)
            if args.profile:
                database = work / "profiled.sqlite3"
                config = config_for(database)
                fill(server, n)
                sink.clear()
                out = args.profile_out or REPO / "bench" / f"rush-{n}.prof"
                seconds = run_profile(config, database, n, work, out)
                print(f"\nprofiled run: {seconds:.1f} s wall (inflated by cProfile)")
                print_profile(out)
    return 0


def report(
    n: int, capacity: int, batch_size: int, runs: list[MailbotRun], limits: list[LimitRun]
) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    mailbot_s = med([r.seconds for r in runs])
    limit_s = med([lim.seconds for lim in limits])
    ratios = [r.seconds / lim.seconds for r, lim in zip(runs, limits, strict=True)]
    last = runs[-1]
    print()
    print(f"N = {n} mails, capacity {capacity} per workshop, batch_size {batch_size}, "
          f"{len(runs)} rounds (medians)")  # fmt: skip
    print(f"  mail states          {last.states}; {last.replies} replies "
          f"({last.reply_bytes / last.replies / 1024:.1f} KiB each on average)")  # fmt: skip
    print(f"  limit (fetch + send) {limit_s:8.2f} s  "
          f"(fetch {med([x.fetch_seconds for x in limits]):.2f} s, "
          f"send {med([x.send_seconds for x in limits]):.2f} s; "
          f"MOVE floor, not counted: {med([x.move_seconds for x in limits]):.2f} s)")  # fmt: skip
    print(f"  mailbot              {mailbot_s:8.2f} s  ({last.polls} × poll --once; "
          f"CPU {med([r.cpu_seconds for r in runs]):.1f} s)")  # fmt: skip
    print(f"  ratio mailbot/limit  {med(ratios):8.2f}     (target ≤ 1.5)")
    print(f"  mails per second     {n / mailbot_s:8.1f}     (limit: {n / limit_s:.1f})")
    print(f"  replies at the sink  from {med([r.first_reply for r in runs]):.1f} s "
          f"to {med([r.last_reply for r in runs]):.1f} s after the start")  # fmt: skip
    print(f"  peak RSS of mailbot  {max(r.peak_rss_kib for r in runs) / 1024:8.1f} MiB "
          "(largest single process, os.wait4 rusage)")  # fmt: skip
    print(f"  … all its processes  {max(r.peak_tree_kib for r in runs) / 1024:8.1f} MiB "
          "(poll + read-ahead + sender, summed, sampled every 100 ms)")  # fmt: skip
    print("  CPU seconds by part (medians; this machine has "
          f"{os.cpu_count()} cores, so a run can use at most {os.cpu_count()} × its wall time)")  # fmt: skip
    for title, parts in (("mailbot", [r.cpu for r in runs]), ("limit", [x.cpu for x in limits])):
        names = sorted({name for part in parts for name in part}, key=_part_order)
        shown = ", ".join(
            f"{CPU_PARTS.get(name, name)} {med([p.get(name, 0.0) for p in parts]):.1f}"
            for name in names
        )
        print(f"    {title:8} {shown}")


# The processes' names in /proc (the helpers set theirs) and what the report calls them.
CPU_PARTS = {
    "python": "poll",
    "mailbot-read": "read-ahead",
    "mailbot-send": "sender",
    "client": "client (fetch, send and MOVE)",
    "dovecot": "Dovecot",
    "sink": "SMTP sink",
    "steal": "taken by the host (steal)",
}


def _part_order(name: str) -> int:
    return list(CPU_PARTS).index(name) if name in CPU_PARTS else len(CPU_PARTS)


if __name__ == "__main__":
    sys.exit(main())
