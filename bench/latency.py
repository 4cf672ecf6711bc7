"""How long does one participant wait for the answer? (issue 7: with IDLE, median of 20 < 2 s)

    python bench/latency.py [--count 20] [--poll-seconds 60] [--no-idle]

Starts its own Dovecot and SMTP sink on loopback (tests/servers.py), then `mailbot run` as a
subprocess, exactly as the systemd unit runs it. Once the worker is up it APPENDs one
registration at a time and measures the wall time from just before the APPEND to the moment
the sink holds the reply to it (matched by In-Reply-To, so the digest the worker sends at start
cannot be mistaken for an answer). Prints every latency, then median, p90 and max.

The worker's mode is read from its log: "IMAP IDLE on …" means IDLE, "offers no IDLE" or no
such line means polling, where the expected latency is about poll_seconds / 2 plus the cycle.
The gap between two mails is random (0.2–1.2 s), so polling latencies are not phase-locked.

A benchmark, not a test: it never fails on a slow machine, it reports what it sees.
"""

from __future__ import annotations

import argparse
import email
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from rushmail import BERLIN, ORGANISER, REPO, Dovecot, SmtpSink, write_config

PYTHON = sys.executable


def registration(i: int) -> tuple[bytes, str]:
    """One German form registration from a new person; returns the bytes and its Message-ID."""
    name = f"Latenz Testperson{i}"
    address = f"latenz.{i}@stadt-dortmund.example"
    message = EmailMessage()
    message["From"] = f"{name} <{address}>"
    message["To"] = ORGANISER
    message["Subject"] = "Anmeldung 2. Werkstatt"
    message["Date"] = format_datetime(datetime(2018, 1, 15, 9, 0, tzinfo=BERLIN))
    message_id = make_msgid(domain="stadt-dortmund.example")
    message["Message-ID"] = message_id
    message.set_content(
        "Sehr geehrte Damen und Herren,\n\nhiermit melde ich mich zur 2. Werkstatt am "
        f"22. Februar 2018 an.\n\nName: {name}\nOrganisation: Stadt Dortmund\n"
        f"E-Mail: {address}\nMittagsimbiss: ja\n\nMit freundlichen Grüßen\n{name}\n"
    )
    return message.as_bytes(), message_id


def wait_for_reply(sink: SmtpSink, message_id: str, seen: int, timeout: float) -> int:
    """Poll the sink until a message answering `message_id` arrived; returns the new count."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        received = sink.received
        for item in received[seen:]:
            headers = email.message_from_bytes(item.data.split(b"\r\n\r\n", 1)[0])
            if headers.get("In-Reply-To", "").strip() == message_id:
                return len(received)
        time.sleep(0.005)
    raise TimeoutError(f"no reply to {message_id} within {timeout:.0f} s")


def wait_for_log(path: Path, needles: tuple[str, ...], timeout: float) -> str | None:
    """The first of `needles` that appears in the log within `timeout`, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        for needle in needles:
            if needle in text:
                return needle
        time.sleep(0.05)
    return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="mails, one at a time (20)")
    parser.add_argument("--poll-seconds", type=int, default=60, help="[mailbot] poll_seconds")
    parser.add_argument("--no-idle", action="store_true", help="set [imap] idle = false")
    parser.add_argument("--timeout", type=float, default=180.0, help="per mail, seconds")
    args = parser.parse_args(argv)
    rng = random.Random(1)

    with (
        tempfile.TemporaryDirectory(prefix="mailbot-latency-") as tmp,
        Dovecot() as server,
        SmtpSink() as sink,
    ):
        work = Path(tmp)
        config = write_config(
            work,
            server,
            sink,
            database=work / "mailbot.sqlite3",
            capacity=1000,
            poll_seconds=args.poll_seconds,
        )
        if args.no_idle:
            text = config.read_text(encoding="utf-8")
            config.write_text(text.replace("idle = true", "idle = false"), encoding="utf-8")
        log_path = work / "worker.log"
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [PYTHON, "-m", "mailbot", "run", "--config", str(config)],
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
        try:
            if wait_for_log(log_path, ("mailbot running",), 60) is None:
                raise RuntimeError("worker did not start:\n" + log_path.read_text()[-3000:])
            found = wait_for_log(log_path, ("IMAP IDLE on", "offers no IDLE"), 10)
            mode = "IDLE" if found == "IMAP IDLE on" else f"polling every {args.poll_seconds} s"
            # Let the start-up cycle and the digest catch-up finish before the first mail.
            time.sleep(2)
            print(f"worker mode: {mode} (from its log)", flush=True)
            latencies: list[float] = []
            seen = len(sink)
            with server.client(timeout=30) as imap:
                for i in range(args.count):
                    raw, message_id = registration(i)
                    arrival = datetime(2018, 1, 15, 9, 0, tzinfo=BERLIN) + timedelta(minutes=i)
                    began = time.perf_counter()
                    imap.append("INBOX", raw, msg_time=arrival)
                    seen = wait_for_reply(sink, message_id, seen, args.timeout)
                    latencies.append(time.perf_counter() - began)
                    print(f"  mail {i + 1:2d}: {latencies[-1]:6.3f} s", flush=True)
                    time.sleep(rng.uniform(0.2, 1.2))
                imap.logout()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    print(
        f"APPEND -> reply at the sink, {len(latencies)} mails, worker {mode}: "
        f"median {statistics.median(latencies):.3f} s, p90 {percentile(latencies, 0.9):.3f} s, "
        f"max {max(latencies):.3f} s (issue 7 target: median < 2 s with IDLE)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
