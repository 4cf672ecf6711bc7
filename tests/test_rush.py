"""A rush: a backlog of several batches, on real Dovecot and a real SMTP sink.

It is answered while it is still being read, by a second sending process (with the real
clock: the sender process has no other). The proof of overlap is in the database: the first
reply was marked sent before the last mail was recorded. The rules of the outbox still hold
with two senders: every reply reaches the sink exactly once and is marked sent once. And the
seats the pipeline keeps from one batch to the next never hide a change made elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import (
    JAN,
    assert_ends_with_its_parent,
    db_rows,
    register,
    run_cycle,
    server_config,
    server_config_file,
)
from servers import Dovecot, SmtpSink

from mailbot.config import Config, load_config
from mailbot.helpers import helper_context
from mailbot.pipeline import batches_of
from mailbot.store.schema import messages, outbox

MAILS = 200  # enough that the backlog outlasts the start of the second process (~1 s)
# For the proof of overlap: the sender's first reply leaves 0.7-1.1 s after the first mail is
# recorded, and 200 mails were settled in 1.2-1.6 s, too close a race (round 9).
OVERLAP_MAILS = 400


def rush_config(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, **mailbot: object) -> Config:
    config = server_config(tmp_path, dovecot, smtp_sink, **mailbot)
    return config.model_copy(update={"imap": config.imap.model_copy(update={"batch_size": 5})})


def fill(dovecot: Dovecot, count: int = MAILS) -> None:
    for i in range(count):
        register(dovecot, f"Person {i}", f"person{i}@example.org", JAN + timedelta(minutes=i))


def assert_each_reply_once(config: Config, smtp_sink: SmtpSink, count: int = MAILS) -> None:
    queued = db_rows(config, outbox)
    assert len(queued) == count
    assert all(r.sent_at is not None and r.attempts == 1 for r in queued)
    delivered = [r.data for r in smtp_sink.received]
    assert len(delivered) == count
    ids = {line for d in delivered for line in d.split(b"\r\n") if line.startswith(b"Message-ID:")}
    assert len(ids) == count  # no reply twice


def test_a_backlog_is_answered_while_it_is_read(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    config = rush_config(tmp_path, dovecot, smtp_sink)
    fill(dovecot, OVERLAP_MAILS)
    report = run_cycle(config)
    assert report.handled == len(report.mails) == OVERLAP_MAILS
    assert_each_reply_once(config, smtp_sink, OVERLAP_MAILS)
    first_sent = min(r.sent_at for r in db_rows(config, outbox))
    last_recorded = max(m.created_at for m in db_rows(config, messages))
    assert first_sent < last_recorded, "replies left only after the whole backlog"
    assert report.send.sent < OVERLAP_MAILS  # the poll's own send found most gone already


@pytest.mark.parametrize("setting", ["off", "one batch"])
def test_no_second_process_when_off_or_for_one_batch(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, setting: str
) -> None:
    if setting == "off":
        config = rush_config(tmp_path, dovecot, smtp_sink, parallel_backlog=False)
    else:
        config = server_config(tmp_path, dovecot, smtp_sink)
        config = config.model_copy(
            update={"imap": config.imap.model_copy(update={"batch_size": MAILS})}
        )
    fill(dovecot)
    report = run_cycle(config)
    assert report.send.sent == MAILS  # all of them by the poll's own send, after the backlog
    assert_each_reply_once(config, smtp_sink)
    first_sent = min(r.sent_at for r in db_rows(config, outbox))
    last_recorded = max(m.created_at for m in db_rows(config, messages))
    assert first_sent > last_recorded


def test_seats_kept_between_batches_see_a_change_made_elsewhere(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """The pipeline keeps the seats of its last batch; a change by anyone else (here: an
    admin's cancellation between two cycles) bumps the change count and is read."""
    import asyncio

    from helpers import statuses

    from mailbot.decide.rules import Status
    from mailbot.pipeline import Pipeline
    from mailbot.store.db import Store

    config = server_config(tmp_path, dovecot, smtp_sink, capacity=1)
    store = Store(config.database_url)
    pipeline = Pipeline(config, store)
    try:
        register(dovecot, "Anna Arndt", "anna@example.org", JAN)
        asyncio.run(pipeline.cycle())
        assert pipeline._seats is not None  # kept for the next batch
        with store.transaction() as conn:
            before = store.seat_changes(conn)
            store.set_status(conn, "anna@example.org", "werkstatt-2", Status.CANCELLED, JAN)
            assert store.seat_changes(conn) == (before or 0) + 1
        register(dovecot, "Bernd Brandt", "bernd@example.org", JAN + timedelta(hours=1))
        asyncio.run(pipeline.cycle())
    finally:
        store.close()
    assert statuses(config) == {"anna@example.org": "cancelled", "bernd@example.org": "confirmed"}


def test_every_write_to_seats_or_people_counts_as_a_change(tmp_path: Path) -> None:
    from sqlalchemy import delete, insert, update

    from mailbot.store.db import Store
    from mailbot.store.schema import participants, registrations

    store = Store(f"sqlite:///{tmp_path / 'count.sqlite3'}")
    statements = [
        insert(participants).values(id=1, email="a@example.org", language="de", created_at=JAN),
        update(participants).values(name="A"),
        insert(registrations).values(
            participant_id=1,
            event_id="werkstatt-2",
            status="confirmed",
            arrival=JAN,
            created_at=JAN,
            updated_at=JAN,
        ),
        update(registrations).values(status="cancelled"),
        delete(registrations),
        delete(participants),
    ]
    with store.transaction() as conn:
        seen = [store.seat_changes(conn)]
        for statement in statements:
            conn.execute(statement)
            seen.append(store.seat_changes(conn))
    store.close()
    assert seen == list(range(len(statements) + 1))


def test_kept_seats_order_ties_as_a_fresh_read_does(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """Same arrival second (INTERNALDATE has no more): the row id breaks the tie, also for
    someone who registers again after cancelling and so keeps an old row."""
    import asyncio

    from helpers import mail

    from mailbot.pipeline import Pipeline
    from mailbot.store.db import Store

    config = server_config(tmp_path, dovecot, smtp_sink, capacity=1)
    store = Store(config.database_url)
    pipeline = Pipeline(config, store)
    later = JAN + timedelta(hours=2)
    try:
        register(dovecot, "Anna Arndt", "anna@example.org", JAN)
        register(dovecot, "Bernd Brandt", "bernd@example.org", JAN + timedelta(minutes=1))
        cancel = mail(
            "Ich melde mich ab.", sender="Bernd Brandt <bernd@example.org>", subject="Abmeldung"
        )
        dovecot.append(cancel, JAN + timedelta(minutes=2))
        asyncio.run(pipeline.cycle())
        register(dovecot, "Clara Claussen", "clara@example.org", later)
        register(dovecot, "Bernd Brandt", "bernd@example.org", later)
        asyncio.run(pipeline.cycle())
        assert pipeline._seats is not None
        kept = pipeline._seats.states["werkstatt-2"].waitlist()
        with store.transaction() as conn:
            fresh = store.event_states(conn, config)["werkstatt-2"].waitlist()
    finally:
        store.close()
    assert kept == fresh == ["bernd@example.org", "clara@example.org"]


def test_poll_once_forks_its_helpers_and_still_answers_each_mail_once(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """`mailbot poll --once` polls in its only thread, so its helpers are forked (started in
    milliseconds, everything imported: mailbot/helpers.py); the rules above hold the same.
    (In this test process the SMTP sink runs in a thread: here they would be spawned.)"""
    config_file = server_config_file(
        tmp_path, dovecot, smtp_sink, **{"batch_size = 50": "batch_size = 5"}
    )
    fill(dovecot)
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "poll", "--once", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{MAILS} mails handled" in result.stdout
    assert re.search(r"sending alongside the poll \(process \d+, forked\)", result.stderr)
    # The read-ahead was forked before the poll's imports and is the one the backlog used.
    assert re.search(r"reading ahead in process \d+ \(forked with the poll\)", result.stderr)
    config = load_config(config_file)
    assert_each_reply_once(config, smtp_sink)
    first_sent = min(r.sent_at for r in db_rows(config, outbox))
    last_recorded = max(m.created_at for m in db_rows(config, messages))
    assert first_sent < last_recorded, "replies left only after the whole backlog"


def test_helpers_are_forked_only_while_this_process_has_one_thread() -> None:
    alone = "from mailbot.helpers import helper_context as h; print(h().get_start_method())"
    method = subprocess.run([sys.executable, "-c", alone], capture_output=True, text=True)
    assert method.stdout.strip() == "fork", method.stderr
    ready, stop = threading.Event(), threading.Event()
    other = threading.Thread(target=lambda: (ready.set(), stop.wait(10)))
    other.start()
    try:
        ready.wait(10)
        assert helper_context().get_start_method() == "spawn"
    finally:
        stop.set()
        other.join()


def test_a_forked_sender_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    """It learns of its parent's death from the end of their pipe, which never comes while
    the forked child still holds the parent's copy of that pipe (it closes it), and from
    its parent's pid (the read-ahead helper, forked later, holds a copy as well)."""
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
from mailbot.cli import setup_logging
from mailbot.reading import ReadAhead
from mailbot.send.background import sending_alongside
from mailbot.store.db import Store
config = make_config(Path({str(tmp_path)!r}))
Store(config.database_url).close()
setup_logging(verbose=False)
with sending_alongside(config):
    reader = ReadAhead(config)  # forked after the sender, as in the poll: it holds the pipe too
    time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    assert parent.stderr is not None
    started = re.search(r"process (\d+), (\w+)\)", parent.stderr.readline())
    assert started is not None and started[2] == "forked"
    sender = int(started[1])
    parent.kill()
    parent.wait(10)
    assert_ends_with_its_parent(sender, "sender")


def test_helpers_forked_in_the_order_of_poll_once_leave_when_it_is_killed(tmp_path: Path) -> None:
    """`poll --once` forks the read-ahead first and the sender later, so the sender holds
    copies of the poll's ends of the read-ahead's pipes: the read-ahead then learns of the
    poll's death from its parent's pid, and both end."""
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
from mailbot.cli import setup_logging
from mailbot.reading import ReadAhead
from mailbot.send.background import sending_alongside
from mailbot.store.db import Store
config = make_config(Path({str(tmp_path)!r}))
setup_logging(verbose=False)
reader = ReadAhead.early(config)
assert reader is not None and reader.wait_up(60)
Store(config.database_url).close()
with sending_alongside(config):
    print(reader.process.pid, flush=True)
    time.sleep(60)
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None and parent.stderr is not None
    started = re.search(r"process (\d+), (\w+)\)", parent.stderr.readline())
    assert started is not None and started[2] == "forked"
    read_ahead = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    assert_ends_with_its_parent(int(started[1]), "sender")
    assert_ends_with_its_parent(read_ahead, "read-ahead")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 50])
@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 49, 50, 51, 60, 100, 2000, 2043])
def test_a_backlog_is_batched_with_two_short_batches_first(count: int, size: int) -> None:
    uids = list(range(1, count + 1))
    batches = batches_of(uids, size)
    assert [uid for batch in batches for uid in batch] == uids  # each once, in order
    sizes = [len(batch) for batch in batches]
    assert all(0 < n <= size for n in sizes)
    if count <= size:
        assert sizes == ([count] if count else [])  # no backlog: one batch, as ever
    else:
        assert sizes[:2] == [max(1, size // 5), max(1, size // 2)]
        assert all(n == size for n in sizes[2:-1])


@pytest.mark.parametrize(
    ("count", "alone"),
    [(1, {1}), (3, {2}), (3, {1, 3}), (5, {1, 2, 3, 4, 5}), (60, {1, 10, 11, 34, 60})],
)
def test_large_mails_are_batches_of_their_own(count: int, alone: set[int]) -> None:
    uids = list(range(1, count + 1))
    batches = batches_of(uids, 50, alone=alone)
    assert [uid for batch in batches for uid in batch] == uids  # each once, in order
    assert all(len(batch) == 1 for batch in batches if set(batch) & alone)
    assert all(len(batch) > 0 for batch in batches)
    plain = [batch for batch in batches_of(uids, 50) if not set(batch) & alone]
    assert all(batch in batches for batch in plain)  # batches without a large mail stay whole
