"""The `mailbot` command: a thin shell over the library, errors as one clear line.

Each command loads what it needs, calls one library function and turns known problems
(config, templates, unreachable servers) into a message and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config

if TYPE_CHECKING:
    from mailbot.reading import ReadAhead

log = logging.getLogger("mailbot")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # Library chatter (imapclient, apscheduler) only when asked for.
    for noisy in (
        "imapclient",
        "apscheduler",
        "aiosmtpd",
        "mail",
        "mail_devel",
        "pymap",
        "aiohttp",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from mailbot.reply.samples import check_templates, sample_requests

    problems = check_templates(config)
    if problems:
        # One mistake breaks every reply that uses the template: say it once, with where.
        where: dict[str, list[str]] = {}
        for line in problems:
            label, _, problem = line.partition(": ")
            where.setdefault(problem or label, []).append(label)
        for problem, labels in where.items():
            shown = ", ".join(labels[:3]) + (
                f" and {len(labels) - 3} more" if len(labels) > 3 else ""
            )
            print(f"error: {problem} (in {shown})", file=sys.stderr)
        return EXIT_CONFIG
    count = sum(1 for _ in sample_requests(config))
    print(f"{args.config}: OK — {len(config.events)} events, {count} reply templates rendered")
    return EXIT_OK


def cmd_preview(args: argparse.Namespace, config: Config) -> int:
    from mailbot.reply.preview import preview
    from mailbot.reply.render import TemplateProblem

    try:
        print(preview(config, args.outcome, args.lang, args.event, args.html, args.eml))
    except (TemplateProblem, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, TemplateProblem) else EXIT_FAILURE
    return EXIT_OK


def cmd_parse(args: argparse.Namespace, config: Config | None) -> int:
    from mailbot.parse import parse_mail

    default_event = config.current_event.number if config else 2
    known = [e.number for e in config.events] if config else [1, 2, 3, 4]
    status = EXIT_OK
    for name in args.files:
        path = Path(name)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"error: {path}: {exc.strerror}", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        parsed = parse_mail(
            raw,
            default_event=default_event,
            known_events=known,
            own_addresses=config.own_addresses if config else (),
        )
        record = parsed.contract_dict(path.name)
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            people = ", ".join(f"{p['name']} <{p['email']}>" for p in record["participants"])  # type: ignore[attr-defined]
            print(
                f"{path.name}: {record['intent']} events={record['events']} {people}"
                + (f" (review: {parsed.needs_review})" if parsed.needs_review else "")
            )
    return status


def cmd_poll(args: argparse.Namespace, config: Config) -> int:
    from mailbot.reading import ReadAhead

    # Forked before the imports below (half a second on one core): the helper imports the
    # parser and builds its rules on the other core meanwhile, ready for a backlog.
    read_ahead = ReadAhead.early(config)
    try:
        return _poll_once(config, read_ahead)
    finally:
        if read_ahead is not None:
            read_ahead.close(wait=False)


def _poll_once(config: Config, read_ahead: ReadAhead | None) -> int:
    from mailbot.helpers import freeze_startup_heap
    from mailbot.inbox.imap import InboxError
    from mailbot.pipeline import Pipeline
    from mailbot.store.db import Store

    store = Store(config.database_url)
    pipeline = Pipeline(config, store)
    freeze_startup_heap()
    try:
        report = pipeline.cycle_here(read_ahead)
    except InboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        pipeline.release()
        store.close()
    print(
        f"{report.handled} mails handled, {report.promoted} promoted, "
        f"{report.send.sent} replies sent, {report.send.retried} to retry, "
        f"{report.send.failed} failed"
    )
    return EXIT_FAILURE if report.send.failed else EXIT_OK


class _StopBeforeStart(Exception):
    pass


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    # A SIGTERM before the worker has installed its own handlers (systemd stopping a unit
    # that is still starting) is a clean stop too, not a death by signal.
    def stop_early(signum: int, frame: object) -> None:
        raise _StopBeforeStart

    signal.signal(signal.SIGTERM, stop_early)
    try:
        from mailbot.helpers import freeze_startup_heap
        from mailbot.pipeline import Pipeline
        from mailbot.store.db import Store
        from mailbot.worker import run_worker

        store = Store(config.database_url)
        try:
            pipeline = Pipeline(config, store)
            freeze_startup_heap()
            asyncio.run(run_worker(pipeline))
        finally:
            store.close()
    except _StopBeforeStart:
        log.info("stopped before the worker started")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, config: Config | None) -> int:
    from mailbot.demo.run import run_demo

    if not args.verbose:
        # The table tells the story; per-mail log lines only with --verbose.
        logging.getLogger("mailbot").setLevel(logging.WARNING)
    return run_demo(keep_running=args.keep_running, base_config=args.config)


def _shared_options(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before the command name or after it.

    The main parser carries the defaults; each command's copy has none (SUPPRESS), so a value
    given before the command is not overwritten by the command's default, and of two values
    the later one wins.
    """
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH if defaults else argparse.SUPPRESS,
        metavar="PATH",
        help="configuration file (default: ./config.toml)",
    )
    shared.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="debug logging",
    )
    return shared


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="E-mail registration processor for small events.",
        parents=[_shared_options(defaults=True)],
    )
    common = _shared_options(defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "check",
        parents=[common],
        help="validate config.toml and render every template",
        description="Validate the config and render every reply template. Example: mailbot check --config config.toml",
    )
    p.set_defaults(func=cmd_check, needs_config=True)

    from mailbot.reply import SCENARIOS

    p = sub.add_parser(
        "preview",
        parents=[common],
        help="show any reply with sample data",
        description="Render one reply as a participant would get it, with sample data. "
        "Example: mailbot preview confirmed --lang en --html /tmp/confirmed.html",
    )
    p.add_argument("outcome", choices=SCENARIOS, metavar="OUTCOME", help=", ".join(SCENARIOS))
    p.add_argument("--lang", choices=("de", "en"), default="de", help="language (default: de)")
    p.add_argument("--event", metavar="ID", help="event id (default: the next real event)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the HTML part here")
    p.add_argument("--eml", type=Path, metavar="FILE", help="also write the whole mail here")
    p.set_defaults(func=cmd_preview, needs_config=True)

    p = sub.add_parser(
        "parse",
        parents=[common],
        help="show what mailbot reads from .eml files",
        description="Parse mails without touching any server. Example: mailbot parse mail.eml --json",
    )
    p.add_argument("files", nargs="+", metavar="FILE.eml")
    p.add_argument("--json", action="store_true", help="one JSON object per file and line")
    p.set_defaults(func=cmd_parse, needs_config=False)

    p = sub.add_parser(
        "poll",
        parents=[common],
        help="run one cycle: handle new mail, send replies",
        description="One cycle (for cron and tests). Example: mailbot poll --once",
    )
    p.add_argument("--once", action="store_true", required=True, help="one cycle, then exit")
    p.set_defaults(func=cmd_poll, needs_config=True)

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run the worker until SIGINT/SIGTERM",
        description="Poll every poll_seconds and send replies. Example: mailbot run",
    )
    p.set_defaults(func=cmd_run, needs_config=True)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the pipeline on sample mails with built-in servers",
        description="Start an in-memory IMAP+SMTP server, deliver sample mails, run mailbot. Example: mailbot demo --keep-running",
    )
    p.add_argument("--keep-running", action="store_true", help="leave the servers and web view up")
    p.set_defaults(func=cmd_demo, needs_config=False)

    from mailbot.admin.cli import register

    register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    config: Config | None = None
    try:
        if args.needs_config:
            config = load_config(args.config)
        elif args.config.exists():
            # parse and demo work without a config; a broken one must not stop them.
            with contextlib.suppress(ConfigError):
                config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from mailbot.admin.errors import AdminError

    try:
        return int(args.func(args, config))
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
