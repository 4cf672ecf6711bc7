"""Read fetched mail into what the rules need: the parsed mail, its dedupe key, its arrival.

Pure and independent of the database, which is why it can run ahead of the pipeline in a
helper process during a rush (`ReadAhead`): parsing is about a third of the CPU a mail costs,
and while one batch is settled in the write transaction the next is read on another core.
The result is the same either way; `read_inline` is the path for everything else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from mailbot.config import Config
from mailbot.forward import unwrap_forward
from mailbot.helpers import freeze_startup_heap, helper_context, is_forked, name_this_process
from mailbot.inbox.imap import FetchedMail
from mailbot.models import ParsedMail

log = logging.getLogger("mailbot")


@dataclass(frozen=True)
class Reading:
    """One mail as read: the parsed content, the dedupe key, and the arrival that counts."""

    parsed: ParsedMail
    key: str
    arrival: datetime
    forwarded_by: str | None


def parse_for(config: Config, raw: bytes, arrival: datetime | None = None) -> ParsedMail:
    """`parse_mail` with what the config knows: the events and our own addresses, and the
    event a mail that names none means when it arrived (`Config.current_event_at`)."""
    from mailbot.parse import parse_mail  # not the poll's import (mailbot/helpers.py)

    return parse_mail(
        raw,
        default_event=config.current_event_at(arrival).number,
        known_events=[e.number for e in config.events],
        own_addresses=config.own_addresses,
    )


def dedupe_key(parsed: ParsedMail, raw: bytes) -> str:
    """Recognises the same mail under a new UID (after a UIDVALIDITY change, or delivered twice).

    The Message-ID alone is not enough: broken clients reuse them, and a different mail with a
    reused ID must not be taken for a copy. Sender, date and subject go into the key too, and
    the key is hashed, so it holds no personal data.
    """
    headers = parsed.headers
    if headers.message_id:
        date = headers.date.isoformat() if headers.date else ""
        basis = "\x00".join((headers.message_id, headers.from_address or "", date, headers.subject))
        return "mid:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_mail(config: Config, mail: FetchedMail, oversized: bool) -> Reading:
    parsed = parse_for(config, mail.raw, mail.arrival)
    key = dedupe_key(parsed, mail.raw)
    if oversized:
        return Reading(parsed, f"{key}#size{mail.size}", mail.arrival, None)
    if (parsed.headers.from_address or "") in config.own_addresses:
        forwarded = unwrap_forward(mail.raw, config.tz)
        if forwarded is not None:
            # An organiser forwarded a participant's mail: it is the participant we answer,
            # and the original date is the one that counts for the deadline.
            arrival = forwarded.arrival or mail.arrival
            return Reading(
                parse_for(config, forwarded.raw, arrival),
                key,
                arrival,
                parsed.headers.from_address,
            )
    return Reading(parsed, key, mail.arrival, None)


def read_inline(config: Config, mails: Sequence[tuple[FetchedMail, bool]]) -> list[Reading]:
    return [read_mail(config, mail, oversized) for mail, oversized in mails]


Pending = Callable[[], list[Reading]]


class ReadInline:
    """Reads a batch when asked for its result, in this process."""

    # Whether the first batch submitted is read in another process while this one goes on.
    reads_first_batch_elsewhere = False

    def __init__(self, config: Config) -> None:
        self.config = config

    def submit(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        return lambda: read_inline(self.config, mails)

    def close(self) -> None:
        pass


class ReadAhead(ReadInline):
    """Reads batches in a helper process, so the next batch is parsed while this one settles.

    A spawned helper needs about half a second to start (a new interpreter importing the
    parser), so batches submitted before it is up are read here and the first replies do not
    wait for it. A forked one (mailbot/helpers.py) gets every batch: it is forked at the start
    of `poll --once`, before the poll's own imports (`early`), and imports the parser and
    compiles its rules on the otherwise idle core meanwhile.
    If the helper dies (killed, out of memory), the batch is read here instead and the rest of
    the cycle goes on in this process: a broken helper costs speed, never a mail.

    A process and two pipes, not a process pool: the pool's thread in this process would
    forbid forking the sender after it, and the read-ahead is now forked first. Batches go
    out on one pipe and come back in order on the other; a thread in the helper takes the
    batches off their pipe at once, so this process never blocks sending the next batch
    while the helper waits to hand back the last one.
    """

    def __init__(self, config: Config, context: BaseContext | None = None) -> None:
        super().__init__(config)
        context = context or helper_context()
        forked = is_forked(context)
        self.start_method = "forked" if forked else "spawned"
        self.read_here_until_up = not forked
        self.reads_first_batch_elsewhere = forked
        # Pipe(duplex=False) gives (receiving end, sending end).
        helper_batches, poll_batches = context.Pipe(duplex=False)
        poll_results, helper_results = context.Pipe(duplex=False)
        inherited = (poll_batches, poll_results) if forked else ()
        self.process: BaseProcess | None = context.Process(
            target=_serve,
            args=(config, os.getpid(), helper_batches, helper_results, inherited),
            name="mailbot-read",
            daemon=True,
        )
        self.process.start()
        helper_batches.close()
        helper_results.close()
        self._batches: Connection | None = poll_batches
        self._results: Connection | None = poll_results
        self._up = False
        self._sent = 0  # batches handed to the helper; answers come back in this order
        self._answered = 0
        self._received: dict[int, tuple[bool | None, Any]] = {}

    @classmethod
    def early(cls, config: Config) -> ReadAhead | None:
        """A forked helper started before the poll imports the rest, or None where forking is
        not safe or helpers are off: then the poll starts one when it sees a backlog."""
        if not config.mailbot.parallel_backlog:
            return None
        context = helper_context()
        if not is_forked(context):
            return None
        try:
            return cls(config, context)
        except OSError as exc:  # no fork now (EAGAIN, ENOMEM): a helper costs speed, not mail
            log.warning("could not start the read-ahead process: %s", exc)
            return None

    def is_up(self) -> bool:
        """Whether the helper is ready to read (parser imported, rules warmed up); never waits."""
        return self.wait_up(0.0)

    def wait_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with suppress(EOFError, OSError):
            while not self._up and self._results is not None:
                if not self._results.poll(max(0.0, deadline - time.monotonic())):
                    break
                self._take()
        return self._up

    def submit(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        if self._batches is None or (self.read_here_until_up and not self.is_up()):
            return super().submit(mails)
        number = self._sent
        try:
            self._batches.send((number, list(mails)))
        except (OSError, ValueError):  # the helper is gone (a broken pipe)
            return self._give_up(mails)
        self._sent += 1

        def result() -> list[Reading]:
            try:
                while number not in self._received:
                    if self._results is None:
                        raise EOFError
                    self._take()
            except (EOFError, OSError):
                return self._give_up(mails)()
            ok, value = self._received.pop(number)
            if ok is None:  # the helper could not hand this batch back: read it here
                return read_inline(self.config, mails)
            if not ok:
                raise value  # what reading raised in the helper, as if it had been here
            return value  # type: ignore[no-any-return]

        return result

    def _take(self) -> None:
        assert self._results is not None
        message = self._results.recv()
        if message == "up":
            self._up = True
        else:
            number, ok, value = message
            self._received[number] = (ok, value)
            self._answered += 1

    def _give_up(self, mails: Sequence[tuple[FetchedMail, bool]]) -> Pending:
        log.warning("the read-ahead process is gone; reading mail in this process instead")
        self.close()
        return ReadInline.submit(self, mails)

    def close(self, wait: bool = True) -> None:
        """Stop the helper once it has read what it was given; `wait=False`, or nothing
        given, ends it at once (a helper started early for a poll that found no backlog)."""
        process, self.process = self.process, None
        if process is None:
            return
        batches, results = self._batches, self._results
        self._batches = self._results = None
        try:
            with suppress(OSError, ValueError):
                assert batches is not None
                batches.send(None)
                batches.close()
            if wait and results is not None and self._answered < self._sent:
                # What it still hands back is dropped; the end of the pipe says it left.
                deadline = time.monotonic() + STOP_SECONDS
                with suppress(Exception):  # EOF, or an answer that does not unpickle here
                    while results.poll(max(0.0, deadline - time.monotonic())):
                        results.recv()
                process.join(max(0.0, deadline - time.monotonic()))
        finally:
            if process.is_alive():
                process.kill()  # it holds nothing: no database, no mailbox, no reply
            process.join(5)
            if results is not None:
                results.close()


STOP_SECONDS = 30.0  # a batch of the largest mails, read to the end, before the helper is killed
HELPER_NICENESS = 10

# A registration in German and one in English, parsed once when the helper starts: the
# parser builds and compiles the rules these mails reach on the idle core, not on the
# first batch (about 0.1 s, on the way to the first replies).
_WARM_UP_MAILS = (
    b"From: Erika Mustermann <erika.mustermann@example.org>\r\n"
    b"To: anmeldung@example.org\r\nSubject: Anmeldung 2. Werkstatt\r\n"
    b"Message-ID: <warm-up-1@example.org>\r\nDate: Mon, 15 Jan 2018 09:30:00 +0100\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Guten Tag,\r\n\r\nhiermit melde ich mich zur 2. Werkstatt am 22.02. an.\r\n\r\n"
    b"Name: Erika Mustermann\r\nE-Mail: erika.mustermann@example.org\r\n"
    b"Organisation: Stadt Dortmund\r\nMittagsimbiss: ja\r\n\r\n"
    b"Mit freundlichen Gr\xc3\xbc\xc3\x9fen\r\nErika Mustermann\r\nStadt Dortmund\r\n",
    b"From: John Doe <john.doe@example.org>\r\nTo: anmeldung@example.org\r\n"
    b"Subject: Re: Registration: workshop 22 February\r\n"
    b"Message-ID: <warm-up-2@example.org>\r\nDate: Mon, 15 Jan 2018 09:31:00 +0000\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    b"Dear organisers,\r\n\r\nI would like to register for the second workshop and will "
    b"join the lunch. I cannot attend the third one.\r\n\r\nBest regards,\r\nJohn Doe\r\n"
    b"Leeds Civic Trust\r\n\r\nOn 12 Jan 2018, Anmeldung <anmeldung@example.org> wrote:\r\n"
    b"> Please register by e-mail.\r\n",
)


def _serve(
    config: Config,
    parent: int,
    batches: Connection,
    results: Connection,
    inherited: tuple[Connection, ...],
) -> None:
    """The helper: read each batch that arrives, hand back its readings, until told to stop."""
    for end in inherited:  # the parent's ends: while a copy is open here, no end is seen
        end.close()
    name_this_process("mailbot-read")
    # Ctrl-C in a terminal reaches the whole process group; it is for the worker, which
    # stops after its batch. (SIGTERM may end the helper: the poll then reads by itself.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's pid comes from the parent: a parent killed while this helper was still
    # starting would otherwise be read here as init's, and the helper would wait forever
    # (CI runs of the crash test left such orphans). The pid, not only the end of the
    # batches pipe: a sender forked after this helper holds a copy of the poll's end.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    waiting: queue.SimpleQueue[tuple[int, list[tuple[FetchedMail, bool]]] | None]
    waiting = queue.SimpleQueue()
    threading.Thread(target=_take_batches, args=(batches, waiting), daemon=True).start()
    _step_back()
    _warm_up(config)
    freeze_startup_heap()
    if not _hand_back(results, "up"):
        return  # the poll is gone already (killed, or it found no backlog)
    while (batch := waiting.get()) is not None:
        number, mails = batch
        try:
            answer: tuple[int, bool, Any] = (number, True, read_inline(config, mails))
        except Exception as exc:  # raised again in the poll, as if it had read the batch
            answer = (number, False, exc)
        if not _hand_back(results, answer):
            return


def _hand_back(results: Connection, message: Any) -> bool:
    """Send one message to the poll; False when the poll is gone (the pipe is broken).

    An answer that would not arrive whole (an exception from reading that does not pickle,
    or does not unpickle, as one whose constructor wants other arguments) becomes "read it
    there": the poll then reads that batch itself, and meets what reading inline meets.
    """
    if isinstance(message, tuple) and message[1] is False:
        try:
            pickle.loads(pickle.dumps(message[2]))
        except Exception:
            message = (message[0], None, None)
    try:
        results.send(message)
    except (OSError, ValueError):
        return False
    except Exception:  # readings that do not pickle (none known): read them there
        return _hand_back(results, (message[0], None, None))
    return True


def _take_batches(batches: Connection, waiting: queue.SimpleQueue[Any]) -> None:
    """Take batches off the pipe as they come, whatever the reading does meanwhile.

    Anything that ends this (the parent gone, a batch cut short or too large to unpickle)
    ends the helper after the batch in hand: the poll then sees the end of the results pipe
    and reads what is left itself.
    """
    try:
        while (batch := batches.recv()) is not None:
            waiting.put(batch)
    except Exception as exc:  # EOFError and OSError: the parent is gone
        if not isinstance(exc, EOFError | OSError):
            log.debug("the read-ahead stops: a batch did not arrive whole (%r)", exc)
    finally:
        waiting.put(None)


def _warm_up(config: Config) -> None:
    """Import the parser and build the rules the common mails reach. Only a speed-up."""
    import mailbot.parse  # noqa: F401  (also when a warm-up mail fails below)

    for raw in _WARM_UP_MAILS:
        with suppress(Exception):
            parse_for(config, raw)


def _step_back() -> None:
    """Let the poll, the sender and the SMTP server run first whenever they can (nice 10).

    On a machine with fewer cores than busy processes the scheduler shared the CPU evenly,
    and the sender, which takes turns with the SMTP server for every reply, fell behind:
    a 2,000-mail rush ended with about 300 replies still to send over one connection while
    a core idled. This helper only ever works one batch ahead of the poll, so it loses
    nothing by waiting: when the poll needs its batch, the poll waits and the helper gets the
    core. In 16 interleaved runs (bench/timeline.py) the rush took 7 % less time, faster in
    14 of them.
    """
    with suppress(AttributeError, OSError):  # no os.nice (Windows), or a sandbox forbids it
        os.nice(HELPER_NICENESS)


def _exit_with(parent: int) -> None:
    """A helper whose parent was killed would wait on its pipe forever: leave too."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
