"""`mailbot run`: the long-running worker, an APScheduler job that runs one cycle every poll_seconds.

The scheduler only says *when*; `Pipeline.cycle` says *what*. On SIGINT/SIGTERM the worker
lets the mail in hand finish (its transaction and its move), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError

# The worker reads new mail itself, one at a time (IDLE): the parser is imported at start,
# not when the first mail arrives (`poll --once` leaves it to its read-ahead helper).
import mailbot.parse  # noqa: F401
from mailbot.admin.privacy import purge_expired
from mailbot.config import Config
from mailbot.digest import digest_if_due
from mailbot.inbox.idle import IdleWatcher
from mailbot.inbox.imap import InboxError
from mailbot.pipeline import CycleReport, MailboxBusy, Pipeline
from mailbot.reload import ConfigWatcher

log = logging.getLogger("mailbot")


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or ["?"])[0]


def _note_error(pipeline: Pipeline, text: str) -> None:
    """Keep the last error for `mailbot status` and the digest (best effort)."""
    try:
        with pipeline.store.transaction() as conn:
            pipeline.store.set_health(conn, "last_error", text, pipeline.clock())
    except Exception:  # the database itself may be the problem; the log line stays
        log.debug("could not record the error in the database", exc_info=True)


async def run_cycle_logged(pipeline: Pipeline) -> CycleReport | None:
    """One cycle; connection problems are logged in one line and retried at the next tick."""
    try:
        report = await pipeline.cycle()
    except MailboxBusy as exc:
        # Said once per other worker, not at every poll and IDLE wake-up.
        if pipeline.busy_with != str(exc):
            log.warning("cycle skipped: %s", exc)
            pipeline.busy_with = str(exc)
        return None
    except InboxError as exc:
        log.warning("cycle skipped: %s", exc)
        await asyncio.to_thread(_note_error, pipeline, str(exc))
        return None
    except OperationalError as exc:
        # The database is busy (another program holds a lock) or unreachable: a state, not a bug.
        log.warning("cycle skipped, the database is not available: %s", _first_line(exc))
        return None
    except Exception as exc:
        log.exception("cycle failed unexpectedly; retrying at the next poll")
        await asyncio.to_thread(_note_error, pipeline, f"{exc.__class__.__name__}: {exc}")
        return None
    if pipeline.busy_with:
        log.info("the other mailbot has stopped; this one works on the mailbox now")
        pipeline.busy_with = None
    if report.handled or report.send.sent or report.send.failed or report.promoted:
        log.info(
            "cycle: %d mails, %d promoted, %d replies sent, %d to retry, %d failed",
            report.handled,
            report.promoted,
            report.send.sent,
            report.send.retried,
            report.send.failed,
        )
    return report


class Worker:
    """The scheduled jobs of `mailbot run` around one pipeline: poll, digest, housekeeping."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.watcher = ConfigWatcher(pipeline.config)
        self.scheduler = AsyncIOScheduler(timezone=pipeline.config.tz)
        self.running: set[asyncio.Task[object]] = set()
        self._reload_requested = False
        self._polling = False
        self._again = False
        self.idle: IdleWatcher | None = None

    @property
    def config(self) -> Config:
        return self.pipeline.config

    def request_reload(self) -> None:
        self._reload_requested = True
        log.info("SIGHUP: reloading config and templates")
        self.scheduler.modify_job("poll", next_run_time=datetime.now(self.config.tz))

    def _reload(self) -> None:
        config = self.watcher.reload_if_changed(force=self._reload_requested)
        self._reload_requested = False
        if config is None:
            return
        old = self.pipeline.config
        self.pipeline.replace_config(config)
        if (config.digest.time, config.mailbot.timezone) != (old.digest.time, old.mailbot.timezone):
            self.scheduler.reschedule_job("digest", trigger=self._digest_trigger())
        if config.mailbot.poll_seconds != old.mailbot.poll_seconds:
            self.scheduler.reschedule_job("poll", trigger=self._poll_trigger())

    def _poll_trigger(self) -> IntervalTrigger:
        return IntervalTrigger(seconds=self.config.mailbot.poll_seconds, timezone=self.config.tz)

    def _digest_trigger(self) -> CronTrigger:
        digest = self.config.digest
        return CronTrigger(hour=digest.hour, minute=digest.minute, timezone=self.config.tz)

    async def _tracked(self, work: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)  # type: ignore[arg-type]
        try:
            await work()
        finally:
            if task is not None:
                self.running.discard(task)  # type: ignore[arg-type]

    async def poll(self) -> None:
        async def work() -> None:
            self._reload()
            while True:
                self._again = False
                await run_cycle_logged(self.pipeline)
                if not self._again or self.pipeline.stop_requested.is_set():
                    break

        self._polling = True
        try:
            await self._tracked(work)
        finally:
            self._polling = False

    def wake(self) -> None:
        """New mail announced (IDLE): run a cycle now, or once more after the running one."""
        if self._polling:
            self._again = True
        elif not self.pipeline.stop_requested.is_set():
            self.scheduler.modify_job("poll", next_run_time=datetime.now(self.config.tz))

    async def digest(self) -> None:
        """Today's digest if it is due and not made yet: also the catch-up after downtime."""

        async def work() -> None:
            try:
                await asyncio.to_thread(
                    digest_if_due, self.config, self.pipeline.store, self.pipeline.clock()
                )
                await self.pipeline.send()
            except Exception:
                log.exception("digest failed; it is tried again at the next start or schedule")

        await self._tracked(work)

    async def housekeeping(self) -> None:
        """Erase personal data of events past their retention period."""

        async def work() -> None:
            try:
                await asyncio.to_thread(
                    purge_expired, self.config, self.pipeline.store, self.pipeline.clock()
                )
            except Exception:
                log.exception("retention purge failed; tried again tomorrow")

        await self._tracked(work)

    def start(self) -> None:
        now = datetime.now(self.config.tz)
        jobs = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.scheduler.add_job(
            self.poll, self._poll_trigger(), id="poll", next_run_time=now, **jobs
        )
        # The digest job also runs once at start: that is the catch-up after downtime.
        self.scheduler.add_job(
            self.digest, self._digest_trigger(), id="digest", next_run_time=now, **jobs
        )
        self.scheduler.add_job(
            self.housekeeping,
            CronTrigger(hour=3, minute=17, timezone=self.config.tz),
            id="housekeeping",
            next_run_time=now,
            **jobs,
        )
        self.scheduler.start()
        if self.config.imap.idle:
            loop = asyncio.get_running_loop()
            self.idle = IdleWatcher(
                self.config.imap,
                lambda: loop.call_soon_threadsafe(self.wake),
                self.pipeline.imap_ssl_context,
            )
            self.idle.start()

    async def stop(self) -> None:
        """No new job starts; the running ones finish the mail in hand (and send its reply)."""
        self.scheduler.pause()
        self.pipeline.stop_requested.set()
        if self.idle is not None:
            self.idle.stop()
        if self.running:
            await asyncio.gather(*list(self.running), return_exceptions=True)
        self.scheduler.shutdown(wait=False)
        self.pipeline.release()


async def run_worker(pipeline: Pipeline, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    worker = Worker(pipeline)
    loop = asyncio.get_running_loop()
    # Signal handlers are only possible in the main thread (tests drive the worker from others).
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, worker.request_reload)
    worker.start()
    config = pipeline.config
    log.info(
        "mailbot running: polling %s on %s every %ss, digest at %s (Ctrl-C to stop)",
        config.imap.folder,
        config.imap.host,
        config.mailbot.poll_seconds,
        config.digest.time,
    )
    await stop.wait()
    log.info("stopping: finishing the mail in hand")
    await worker.stop()
    log.info("stopped")
