"""`mailbot run`: the long-running worker, an APScheduler job that runs one cycle every poll_seconds.

The scheduler only says *when*; `Pipeline.cycle` says *what*. On SIGINT/SIGTERM the worker
lets the mail in hand finish (its transaction and its move), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from mailbot.inbox.imap import InboxError
from mailbot.pipeline import CycleReport, Pipeline

log = logging.getLogger("mailbot")


async def run_cycle_logged(pipeline: Pipeline) -> CycleReport | None:
    """One cycle; connection problems are logged in one line and retried at the next tick."""
    try:
        report = await pipeline.cycle()
    except InboxError as exc:
        log.warning("cycle skipped: %s", exc)
        return None
    except Exception:
        log.exception("cycle failed unexpectedly; retrying at the next poll")
        return None
    if report.mails or report.send.sent or report.send.failed or report.promoted:
        log.info(
            "cycle: %d mails, %d promoted, %d replies sent, %d to retry, %d failed",
            len(report.mails),
            report.promoted,
            report.send.sent,
            report.send.retried,
            report.send.failed,
        )
    return report


async def run_worker(pipeline: Pipeline, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not possible outside the main thread (tests drive the worker from one).
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running: set[asyncio.Task[object]] = set()

    async def job() -> None:
        task = asyncio.current_task()
        if task is not None:
            running.add(task)  # type: ignore[arg-type]
        try:
            await run_cycle_logged(pipeline)
        finally:
            if task is not None:
                running.discard(task)  # type: ignore[arg-type]

    config = pipeline.config
    scheduler = AsyncIOScheduler(timezone=config.tz)
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=config.mailbot.poll_seconds, timezone=config.tz),
        id="poll",
        next_run_time=datetime.now(config.tz),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    log.info(
        "mailbot running: polling %s on %s every %ss (Ctrl-C to stop)",
        config.imap.folder,
        config.imap.host,
        config.mailbot.poll_seconds,
    )
    await stop.wait()
    log.info("stopping: finishing the mail in hand")
    pipeline.stop_requested.set()
    scheduler.shutdown(wait=False)
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    log.info("stopped")
