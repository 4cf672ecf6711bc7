"""One SMTP mail transaction for a reply from the outbox, without rewriting its bytes.

aiosmtplib's `sendmail` prepares every message for the wire itself. It turns lone CR and LF
into CRLF twice (once to announce the SIZE, once for DATA) and doubles every dot that begins
a line: three regex passes over the whole message. It also parses the sender and every
recipient twice. For a reply of 8.6 KiB that was about 0.4 ms of the sender's 1.4 ms per
reply, a third of its CPU (bench/sender.py).

The replies in the outbox already have CRLF line ends, because mailbot.reply.wire writes them
that way. For such bytes `deliver` checks the line ends with three counts, doubles the dots
with one `bytes.replace`, and runs MAIL, RCPT and DATA as aiosmtplib's own commands. It does
not call `SMTP.mail` and `SMTP.rcpt`, which parse each address with the stdlib's `parseaddr`
again: for the plain addr-spec it checks first, their quoting is the address in angle
brackets. The server receives exactly the bytes `sendmail` would send (tests/test_transfer.py
compares them at a real aiosmtpd), and failures raise what `sendmail` raises.

Everything else goes through `sendmail` itself:
- bytes with a lone CR or LF;
- more than one recipient (sendmail's rules for partly refused recipients stay in one place);
- an address that is not a plain addr-spec (sendmail rejects a bad one before it sends
  anything, and says why);
- a connection that has not said EHLO yet: the first mail of a connection without STARTTLS
  or AUTH (`connect` says EHLO only for those).

The body is written without aiosmtplib's command lock, which only matters when two tasks
share one client: mailbot's sender uses its client for one mail after the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import aiosmtplib
from aiosmtplib import (
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStatus,
    SMTPTimeoutError,
)

from mailbot.reply.wire import safe_address


async def deliver(
    client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], raw: bytes
) -> None:
    """Send `raw` from `sender` to `recipients` over the connected `client`, as `sendmail`."""
    data = wire_form(raw)
    if (
        data is None
        or len(recipients) != 1
        # Nothing aiosmtplib's address checks refuse: MAIL and RCPT cannot fail with a
        # ValueError after part of the envelope was sent.
        or not (safe_address(sender) and safe_address(recipients[0]))
        or client.is_ehlo_or_helo_needed
    ):
        await client.sendmail(sender, recipients, raw)
        return
    recipient = recipients[0]
    # RFC 1870: the size as transmitted, CRLF included, before the dots are doubled.
    options = [b"size=%d" % len(raw)] if client.supports_extension("size") else []
    try:
        # `SMTP.mail` and `SMTP.rcpt` without their second parsing of the addresses.
        response = await client.execute_command(
            b"MAIL", b"FROM:<" + sender.encode("ascii") + b">", *options
        )
        if response.code != SMTPStatus.completed:
            raise SMTPSenderRefused(response.code, response.message, sender)
        response = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">")
        if response.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            refused = SMTPRecipientRefused(response.code, response.message, recipient)
            raise SMTPRecipientsRefused([refused])  # what sendmail raises
        await _data(client, data)
    except (SMTPResponseException, SMTPRecipientsRefused):
        # As sendmail does: reset the envelope; a failing reset would only hide the cause.
        with contextlib.suppress(ConnectionError, SMTPResponseException):
            await client.rset()
        raise


def wire_form(raw: bytes) -> bytes | None:
    """`raw` as DATA transmits it (leading dots doubled, the final "." line added), or None
    when not every line ends in CRLF (then aiosmtplib's own normalisation must run)."""
    if not raw.endswith(b"\r\n"):
        return None
    lines = raw.count(b"\r\n")
    if raw.count(b"\n") != lines or raw.count(b"\r") != lines:
        return None
    if raw.startswith(b"."):
        raw = b"." + raw
    # Every line but the first begins after an LF, so this doubles every dot that begins one.
    return raw.replace(b"\n.", b"\n..") + b".\r\n"


async def _data(client: aiosmtplib.SMTP, data: bytes) -> None:
    """DATA, then the prepared bytes: `SMTP.data` without its regex passes.

    Both go to the protocol, as in `SMTP.data`: a refused DATA (a 421 too) leaves the
    connection open for the caller's RSET, and only a lost or silent one is closed.
    """
    protocol = client.protocol
    if protocol is None:
        raise SMTPServerDisconnected("Connection lost")
    try:
        response = await protocol.execute_command(b"DATA", timeout=client.timeout)
        if response.code != SMTPStatus.start_input:
            raise SMTPDataError(response.code, response.message)
        # No await between writing and reading: the answer cannot arrive unexpected.
        protocol.write(data)
        response = await protocol.read_response(timeout=client.timeout)
    except (SMTPServerDisconnected, SMTPTimeoutError):
        client.close()  # as SMTP.data does: a connection in an unknown state is not reused
        raise
    if response.code != SMTPStatus.completed:
        raise SMTPDataError(response.code, response.message)
