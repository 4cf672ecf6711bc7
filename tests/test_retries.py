"""A mail that fails is fetched and tried again next cycle, wherever it sits in a backlog.

The last UID advances only over a gap-free run of settled mails. A backlog is several
batches (and a mail over ALONE_BYTES is a batch of its own), so a later batch that settles
whole must not carry the last UID past a mail that failed in an earlier one: that mail would
never be tried again, answered, or set aside for review. Real Dovecot and SMTP sink; the
failure is injected (`fault` in conftest.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import JAN, db_rows, form, mail, register, run_cycle, server_config
from servers import Dovecot, SmtpSink

from mailbot.config import Config
from mailbot.pipeline import ALONE_BYTES
from mailbot.store.schema import mailbox_state, messages

ANNA = ("Anna Arndt", "anna.arndt@example.org")


def last_uid(config: Config) -> int:
    return next(r.last_uid for r in db_rows(config, mailbox_state))


def rows(config: Config) -> list[tuple[int, str, int]]:
    return sorted((r.uid, r.state, r.attempts) for r in db_rows(config, messages))


@pytest.mark.parametrize("parallel", [False, True])
def test_a_failed_mail_before_later_batches_is_retried_next_cycle(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool], parallel: bool
) -> None:
    config = server_config(tmp_path, dovecot, smtp_sink, parallel_backlog=parallel)
    config = config.model_copy(update={"imap": config.imap.model_copy(update={"batch_size": 5})})
    register(dovecot, *ANNA, JAN)
    for i in range(6):  # batches of 1, 2 and 5 (batches_of), Anna alone in the first
        register(dovecot, f"Person {i}", f"p{i}@example.org", JAN + timedelta(minutes=i + 1))
    run_cycle(config)
    assert rows(config)[0] == (1, "failed", 1)
    assert last_uid(config) == 0  # not past Anna, though the later batches settled whole
    assert dovecot.folder_uids("INBOX") == [1]
    fault[0] = False
    run_cycle(config)
    assert rows(config)[0][:2] == (1, "done")
    assert ["anna.arndt@example.org"] in [m.rcpt_tos for m in smtp_sink.received]
    assert dovecot.folder_uids("INBOX") == []


def test_a_failed_mail_before_a_large_one(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool]
) -> None:
    """Two mails are two batches when the second is large: the first failing must hold."""
    config = server_config(tmp_path, dovecot, smtp_sink)
    register(dovecot, *ANNA, JAN)
    padding = ("x" * 76 + "\n") * (ALONE_BYTES // 77 + 1)
    big = mail(
        form("Bert Brandt", "bert.brandt@example.org") + padding,
        sender="Bert Brandt <bert.brandt@example.org>",
    )
    dovecot.append(big, JAN + timedelta(minutes=1))
    run_cycle(config)
    assert last_uid(config) == 0 and rows(config)[0] == (1, "failed", 1)
    assert rows(config)[1][1] != "failed"  # the large one settled in its own batch
    fault[0] = False
    run_cycle(config)
    assert rows(config)[0][:2] == (1, "done")
    assert ["anna.arndt@example.org"] in [m.rcpt_tos for m in smtp_sink.received]


def test_copies_of_a_failing_mail_in_different_batches_count_one_attempt_per_cycle(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool]
) -> None:
    """The second copy waits for the first, wherever in the cycle's backlog it sits: it does
    not take over its retries and fail a second time in the same cycle."""
    config = server_config(tmp_path, dovecot, smtp_sink)
    config = config.model_copy(update={"imap": config.imap.model_copy(update={"batch_size": 5})})
    anna = mail(form(*ANNA), sender="Anna Arndt <anna.arndt@example.org>")
    dovecot.append(anna, JAN)
    for i in range(4):
        register(dovecot, f"Person {i}", f"p{i}@example.org", JAN + timedelta(minutes=i + 1))
    dovecot.append(anna, JAN)  # the copy, in a later batch (1, 2, then 3)
    for cycle in range(1, 3):
        run_cycle(config)
        assert rows(config)[0] == (1, "failed", cycle)
        assert last_uid(config) == 0
    fault[0] = False
    run_cycle(config)
    states = {uid: state for uid, state, _ in rows(config)}
    assert states[1] == "done" and states[6] == "done"
    assert [m.rcpt_tos for m in smtp_sink.received].count(["anna.arndt@example.org"]) == 1
