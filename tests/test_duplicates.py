"""The same mail delivered twice (the other addresses deliver to this mailbox, a server
re-delivers): the second copy goes where the first went, and is never answered again.

Real Dovecot and SMTP sink; two APPENDs of the same bytes are two deliveries of one mail.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import JAN, db_rows, form, mail, run_cycle, server_config
from servers import Dovecot, SmtpSink

from mailbot.admin.queries import review_queue
from mailbot.config import Config
from mailbot.store.db import Store
from mailbot.store.schema import messages

COFFEE = mail(
    "Hallo, gehen wir morgen Kaffee trinken?\n\nGruß\nKarl\n",
    sender="Karl Kollege <kollege@example.org>",
    subject="Kaffee morgen?",
)
QUESTION = mail(
    "Guten Tag,\n\ngibt es bei der 2. Werkstatt Parkplätze am Tagungsort?\n\n"
    "Viele Grüße\nErika Mustermann\n",
    subject="Frage zur 2. Werkstatt",
)
ANNA = mail(
    form("Anna Arndt", "anna.arndt@example.org"), sender="Anna Arndt <anna.arndt@example.org>"
)


@pytest.fixture
def config(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> Config:
    return server_config(tmp_path, dovecot, smtp_sink)


def unread(dovecot: Dovecot, folder: str = "INBOX") -> list[int]:
    """The UIDs in `folder` nobody marked read (and, in the inbox, nobody touched)."""
    return sorted(uid for uid, flags in dovecot.flags(folder).items() if "\\Seen" not in flags)


def states(config: Config) -> list[str]:
    return [r.state for r in sorted(db_rows(config, messages), key=lambda r: r.id)]


def test_two_copies_of_mail_not_ours_stay_untouched(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(COFFEE, JAN)
    dovecot.append(COFFEE, JAN)  # the same mail, to anmeldung@ and information@
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == [1, 2]
    assert unread(dovecot) == [1, 2]
    assert states(config) == ["ignored", "ignored"]
    assert smtp_sink.received == []


def test_copy_of_mail_not_ours_in_a_later_cycle_and_after_new_uidvalidity(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(COFFEE, JAN)
    run_cycle(config)
    dovecot.append(COFFEE, JAN + timedelta(minutes=5))
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == [1, 2] and unread(dovecot) == [1, 2]
    assert states(config) == ["ignored", "ignored"]

    dovecot.new_uidvalidity()
    run_cycle(config)
    assert len(dovecot.folder_uids("INBOX")) == 2
    assert len(unread(dovecot)) == 2
    assert set(states(config)) == {"ignored"}
    assert smtp_sink.received == []


def test_copy_of_mail_in_review_goes_to_review_once(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(QUESTION, JAN)
    run_cycle(config)
    sent = len(smtp_sink.received)  # the acknowledgement and the forward to the organisers
    assert sent >= 1
    dovecot.append(QUESTION, JAN + timedelta(minutes=1))
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == []
    review = config.imap.review_folder
    assert len(dovecot.folder_uids(review)) == 2 and len(unread(dovecot, review)) == 2
    assert states(config) == ["review", "review"]
    store = Store(config.database_url)
    with store.transaction() as conn:
        assert len(review_queue(conn)) == 1  # one question for the organisers, not two
    store.close()
    assert len(smtp_sink.received) == sent  # the copy got no answer


def test_copy_of_a_handled_registration_is_not_answered_again(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    dovecot.append(ANNA, JAN)
    dovecot.append(ANNA, JAN)
    run_cycle(config)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["anna.arndt@example.org"]]
    processed = config.imap.processed_folder
    assert len(dovecot.folder_uids(processed)) == 2 and unread(dovecot, processed) == []
    assert states(config) == ["done", "done"]

    dovecot.new_uidvalidity()  # and the server delivers it once more
    dovecot.append(ANNA, JAN + timedelta(hours=1))
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == []
    assert len(dovecot.folder_uids(processed)) == 3 and unread(dovecot, processed) == []
    assert len(smtp_sink.received) == 1


def test_copy_of_a_failing_mail_waits_for_it(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool]
) -> None:
    dovecot.append(ANNA, JAN)
    dovecot.append(ANNA, JAN)
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == [1, 2] and unread(dovecot) == [1, 2]
    (row,) = db_rows(config, messages)  # the first copy's failure; the second waits
    assert row.uid == 1 and row.state == "failed" and row.attempts == 1
    assert smtp_sink.received == []

    fault[0] = False
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == []
    assert states(config) == ["done", "done"]
    assert [r.rcpt_tos for r in smtp_sink.received] == [["anna.arndt@example.org"]]


def test_copy_of_a_failing_mail_carries_on_when_the_first_is_gone(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool]
) -> None:
    dovecot.append(ANNA, JAN)
    dovecot.append(ANNA, JAN)
    run_cycle(config)
    with dovecot.client() as client:  # a human deletes the first copy
        client.select_folder("INBOX")
        client.delete_messages([1])
        client.expunge()
        client.logout()
    for _ in range(config.mailbot.max_attempts - 1):
        run_cycle(config)
    (row,) = db_rows(config, messages)  # one row, its retries counted on: no second key
    assert row.uid == 2 and row.state == "review"
    assert row.attempts == config.mailbot.max_attempts
    assert dovecot.folder_uids(config.imap.review_folder) == [1]
    assert dovecot.folder_uids("INBOX") == []
    assert smtp_sink.received == []


def test_copy_of_a_mail_failing_across_new_uidvalidity(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink, fault: list[bool]
) -> None:
    dovecot.append(ANNA, JAN)
    run_cycle(config)
    dovecot.new_uidvalidity()
    run_cycle(config)  # retried at its new UID, and fails again: counted on the same row
    (row,) = db_rows(config, messages)
    assert row.state == "failed" and row.attempts == 2
    fault[0] = False
    run_cycle(config)
    assert dovecot.folder_uids("INBOX") == []
    assert [r.rcpt_tos for r in smtp_sink.received] == [["anna.arndt@example.org"]]


def test_two_copies_of_a_mail_too_large_to_read(
    config: Config, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    """Copies of a mail over max_message_bytes have the same key (its headers and its
    size): the second goes to review like the first, and the batch goes on."""
    config = config.model_copy(
        update={"imap": config.imap.model_copy(update={"max_message_bytes": 50_000})}
    )
    big = mail(form("Anna Arndt", "anna.arndt@example.org") + "x" * 100_000)
    dovecot.append(big, JAN)
    dovecot.append(big, JAN)
    dovecot.append(ANNA, JAN + timedelta(minutes=1))
    run_cycle(config)
    assert states(config) == ["review", "review", "done"]
    assert dovecot.folder_uids(config.imap.review_folder) == [1, 2]
    assert [r.rcpt_tos for r in smtp_sink.received] == [["anna.arndt@example.org"]]
    with Store(config.database_url).transaction() as conn:
        assert len(review_queue(conn)) == 1  # one item for the organisers, not two
