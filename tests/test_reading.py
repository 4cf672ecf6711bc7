"""Reading ahead in a helper process gives what reading in this process gives, and a helper
that dies costs speed, never a mail."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import JAN, assert_ends_with_its_parent, form, mail, make_config

from mailbot.inbox.imap import FetchedMail
from mailbot.reading import HELPER_NICENESS, ReadAhead, read_inline

# In this process, which may have threads (pytest): spawned helpers, as in the worker. The
# forked ones of `poll --once` run in single-threaded subprocesses below.
SPAWN = multiprocessing.get_context("spawn")


def fetched(count: int) -> list[tuple[FetchedMail, bool]]:
    mails = []
    for i in range(count):
        raw = mail(
            form(f"Person {i}", f"p{i}@example.org"), sender=f"Person {i} <p{i}@example.org>"
        )
        mails.append((FetchedMail(i + 1, raw, JAN + timedelta(minutes=i), len(raw)), i == 3))
    return mails


def test_read_ahead_equals_reading_here(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    mails = fetched(8)
    reader = ReadAhead(config, SPAWN)
    try:
        assert reader.wait_up(timeout=60)
        first, second = reader.submit(mails[:4]), reader.submit(mails[4:])
        assert first() + second() == read_inline(config, mails)
    finally:
        reader.close()


def test_batches_before_the_helper_is_up_are_read_here(tmp_path: Path) -> None:
    """Starting a helper takes longer than reading a batch: the first replies do not wait."""
    config = make_config(tmp_path)
    mails = fetched(4)
    reader = ReadAhead(config, SPAWN)
    try:
        assert not reader.is_up()  # a new interpreter importing the parser: far from ready
        pending = reader.submit(mails)
        assert pending.__qualname__.startswith("ReadInline.")  # read here, when asked
        assert pending() == read_inline(config, mails)
        assert reader.wait_up(timeout=60)
        assert not reader.submit(mails).__qualname__.startswith("ReadInline.")
    finally:
        reader.close()


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="process names are Linux's")
def test_the_helper_shows_its_job_in_ps(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    reader = ReadAhead(config, SPAWN)
    try:
        assert reader.wait_up(timeout=60)
        assert reader.process is not None
        assert Path(f"/proc/{reader.process.pid}/comm").read_text().strip() == "mailbot-read"
    finally:
        reader.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="/proc is Linux's")
def test_the_helper_steps_back_for_the_poll_and_the_sender(tmp_path: Path) -> None:
    """It runs at a lower priority (mailbot/reading.py, `_step_back`), never a higher one."""
    reader = ReadAhead(make_config(tmp_path), SPAWN)
    try:
        assert reader.wait_up(timeout=60)
        assert reader.process is not None
        # The 19th field of /proc/<pid>/stat is the niceness (after the name in parentheses).
        stat = Path(f"/proc/{reader.process.pid}/stat").read_text()
        helper = int(stat.rsplit(")", 1)[1].split()[16])
        assert helper == min(19, os.nice(0) + HELPER_NICENESS)
    finally:
        reader.close()


def test_a_dead_helper_is_replaced_by_reading_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    mails = fetched(4)
    reader = ReadAhead(config, SPAWN)
    try:
        assert reader.wait_up(timeout=60)
        assert reader.submit(mails[:1])() == read_inline(config, mails[:1])
        assert reader.process is not None and reader.process.pid is not None
        os.kill(reader.process.pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="mailbot"):
            assert reader.submit(mails)() == read_inline(config, mails)
        assert "read-ahead process is gone" in caplog.text
        assert reader.process is None
        assert reader.submit(mails[:2])() == read_inline(config, mails[:2])
    finally:
        reader.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("when", ["up", "starting"])
def test_the_helper_leaves_when_its_parent_is_killed(
    tmp_path: Path, when: str, method: str
) -> None:
    """SIGKILL of the poll or the worker (OOM killer, systemd) must not leave the helper
    behind, also when the helper is still starting (a spawned one once took init for its
    parent and stayed)."""
    import subprocess
    import sys

    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
import multiprocessing
from mailbot.reading import ReadAhead
if __name__ == "__main__":
    context = multiprocessing.get_context({method!r})
    reader = ReadAhead(make_config(Path({str(tmp_path)!r})), context)
    if {when!r} == "up":
        assert reader.wait_up(timeout=60)
    print(reader.process.pid, flush=True)
    time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    helper = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    assert_ends_with_its_parent(helper, "helper")


def test_a_forked_helper_reads_everything_and_this_process_never_imports_the_parser(
    tmp_path: Path,
) -> None:
    """Forked (as in `poll --once`), the helper is up at once: every batch goes to it, also
    the first, and the parser is its import, not the poll's."""
    import subprocess
    import sys

    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
from test_reading import fetched
from mailbot.reading import ReadAhead
config = make_config(Path({str(tmp_path)!r}))
reader = ReadAhead(config)
assert not reader.read_here_until_up
results = [reader.submit(fetched(3))() for _ in range(2)]
reader.close()
assert "mailbot.parse" not in sys.modules, "the poll imported the parser"
print(sum(len(r) for r in results), results[0][0].parsed.intent.value)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6", "register"]


def test_a_forked_helper_raises_what_reading_raised_and_never_blocks_on_big_batches(
    tmp_path: Path,
) -> None:
    """Batches go out while results come back: three batches of 2 MB each are handed over
    before any result is read (no pipe may fill up on both sides), and an exception that
    reading raises in the helper is raised in the poll, as if it had read the batch."""
    import subprocess
    import sys

    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from dataclasses import replace
from pathlib import Path
from helpers import make_config
from test_reading import fetched
import mailbot.reading
from mailbot.reading import ReadAhead, read_inline
config = make_config(Path({str(tmp_path)!r}))
padding = b"\\r\\n" + b"x" * 100_000 + b"\\r\\n"
big = [(replace(m, raw=m.raw + padding), o) for m, o in fetched(20)]
reader = ReadAhead(config)
pending = [reader.submit(big) for _ in range(3)]
results = [p() for p in pending]
assert all(r == results[0] for r in results) and len(results[0]) == 20
def failing(config, mails):
    raise ValueError("reading failed on purpose")
mailbot.reading.read_inline = failing  # in this process only: the helper is forked already
reader.close()
reader = ReadAhead(config)  # forked now: it reads with the failing function
try:
    reader.submit(big[:1])()
except ValueError as exc:
    print("raised:", exc)
assert reader.process is not None, "an exception in reading is no dead helper"
reader.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised: reading failed on purpose"


def test_an_answer_that_cannot_come_back_whole_is_read_here(tmp_path: Path) -> None:
    """An exception from reading that pickles but does not unpickle (its constructor wants
    other arguments) would break the poll's end of the pipe: the helper says "read it
    there" instead, and the poll meets, reading inline, what the helper met."""
    import subprocess
    import sys

    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
from test_reading import fetched
import mailbot.reading
from mailbot.reading import ReadAhead
config = make_config(Path({str(tmp_path)!r}))
class Odd(Exception):
    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
real = mailbot.reading.read_inline
def failing(config, mails):
    raise Odd(7, "odd failure")
mailbot.reading.read_inline = failing
reader = ReadAhead(config)
mailbot.reading.read_inline = real  # here, reading works: the helper asked for it
print(len(reader.submit(fetched(2))()), reader.process is not None)
reader.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True"]


def test_a_mail_naming_no_workshop_is_read_for_the_one_not_over_at_its_arrival(
    tmp_path: Path,
) -> None:
    """With the 3rd workshop announced, a plain "ich melde mich an" after the 2nd is over
    means the 3rd (Config.current_event_at); before, the 2nd."""
    shipped = make_config(tmp_path)
    events = [e.model_copy(update={"placeholder": e.number not in (2, 3)}) for e in shipped.events]
    config = shipped.model_copy(update={"events": events})
    second = config.event_by_number(2)
    assert second is not None
    raw = mail(
        "Hallo,\n\nhiermit melde ich mich für die Werkstatt an.\n\n"
        "Name: Erika Mustermann\nE-Mail: erika.mustermann@example.org\n",
        subject="Anmeldung",
    )
    read = read_inline(
        config,
        [
            (FetchedMail(1, raw, JAN, len(raw)), False),
            (FetchedMail(2, raw, second.end + timedelta(days=1), len(raw)), False),
        ],
    )
    assert [r.parsed.events for r in read] == [[2], [3]]
