"""`deliver` puts exactly the bytes of aiosmtplib's `sendmail` on the wire, and fails the same way.

Checked twice: `wire_form` against aiosmtplib's own normalisation for arbitrary bytes, and whole
transactions against a real aiosmtpd, where the envelope, the SIZE parameter and the message
as received are compared with what `sendmail` delivers for the same bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiosmtplib
import pytest
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given
from hypothesis import strategies as st
from proxy import Proxy
from servers import Received, SmtpSink

from mailbot.reply.wire import safe_address
from mailbot.send.transfer import deliver, wire_form

SENDER = "anmeldung@ils-forschung.example"


def aiosmtplib_data(raw: bytes) -> bytes:
    """What `SMTP.data` transmits after the DATA command."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"


@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b" "]), max_size=40))
@example([b".", b"\r\n"])
@example([b"\r\n", b".", b"\r\n", b".", b"\r\n"])
@example([b"a", b"\r", b"\r\n"])
def test_wire_form_is_what_data_transmits(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    data = wire_form(raw)
    clean = raw.endswith(b"\r\n") and raw.replace(b"\r\n", b"").count(b"\r") == 0
    clean = clean and raw.replace(b"\r\n", b"").count(b"\n") == 0
    assert (data is not None) == clean
    if data is not None:
        assert data == aiosmtplib_data(raw)


# The addr-spec alphabet of reply/wire.py, with the characters parseaddr treats specially.
_LOCAL = st.text("aZ09.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
_LABEL = st.text("aZ09-", min_size=1, max_size=8)


@given(_LOCAL, st.lists(_LABEL, min_size=2, max_size=4))
@example(".a..b.", ["x", "y"])
@example("a'b", ["-x-", "org"])
def test_a_plain_address_is_quoted_as_aiosmtplib_quotes_it(local: str, labels: list[str]) -> None:
    """`deliver` writes MAIL FROM:<address> itself for what `safe_address` accepts."""
    address = f"{local}@{'.'.join(labels)}"
    assert safe_address(address)
    assert quote_address(address) == f"<{address}>"


CASES = [
    b"Subject: plain\r\n\r\nHallo\r\n",
    b"Subject: dots\r\n\r\n.\r\n..\r\n.a line that begins with a dot\r\nend\r\n",
    b".Subject: a dot first\r\n\r\nx\r\n",
    b"Subject: lone LF\r\n\r\none\ntwo\r\n",
    b"Subject: lone CR\r\n\r\none\rtwo\r\n",
    b"Subject: no final line end\r\n\r\nlast",
    b"Subject: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n",
    b"Subject: two recipients\r\n\r\nHallo\r\n",
    b"Subject: a name with the address\r\n\r\nHallo\r\n",
]
# The first three and the 8-bit one take the fast path.
FAST = [0, 1, 2, 6]


def run_client(
    sink: SmtpSink | Proxy,
    send: Callable[[aiosmtplib.SMTP], Awaitable[None]],
    timeout: float = 10,
) -> None:
    async def session() -> None:
        host = getattr(sink, "host", "127.0.0.1")
        client = aiosmtplib.SMTP(hostname=host, port=sink.port, timeout=timeout)
        await client.connect()
        await client.ehlo()  # as connect() does with STARTTLS or AUTH; else sendmail says it
        try:
            await send(client)
        finally:
            await client.quit()

    asyncio.run(session())


def envelope(got: Received) -> tuple[str, list[str], bytes, list[str]]:
    return got.mail_from, got.rcpt_tos, got.data, got.mail_options


def test_the_server_receives_what_sendmail_sends(smtp_sink: SmtpSink) -> None:
    recipients = [[f"person{i}@example.org"] for i in range(len(CASES))]
    recipients[-2] = ["one@example.org", "two@example.org"]  # more than one: sendmail's way
    recipients[-1] = ["Erika Mustermann <erika@example.org>"]  # sendmail takes the address

    async def by_sendmail(client: aiosmtplib.SMTP) -> None:
        for raw, to in zip(CASES, recipients, strict=True):
            await client.sendmail(SENDER, to, raw)

    run_client(smtp_sink, by_sendmail)
    expected = [envelope(got) for got in smtp_sink.wait_for(len(CASES))]
    smtp_sink.clear()

    plain_sendmail = aiosmtplib.SMTP.sendmail
    through_sendmail: list[bytes] = []

    async def seen_sendmail(self: aiosmtplib.SMTP, sender: str, to: Any, raw: bytes) -> Any:
        through_sendmail.append(raw)  # a spy: the real sendmail still sends
        return await plain_sendmail(self, sender, to, raw)

    async def by_deliver(client: aiosmtplib.SMTP) -> None:
        for raw, to in zip(CASES, recipients, strict=True):
            await deliver(client, SENDER, to, raw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiosmtplib.SMTP, "sendmail", seen_sendmail)
        run_client(smtp_sink, by_deliver)
    assert [envelope(got) for got in smtp_sink.wait_for(len(CASES))] == expected
    assert any(option.lower().startswith("size=") for option in expected[1][3])
    # Only those with a lone CR or LF, no final CRLF, two recipients or a name took sendmail.
    assert through_sendmail == [raw for i, raw in enumerate(CASES) if i not in FAST]


def test_a_bad_address_is_refused_before_anything_is_sent(smtp_sink: SmtpSink) -> None:
    async def send(client: aiosmtplib.SMTP) -> None:
        for bad in (["a b@example.org"], ['"a" b@example.org']):
            with pytest.raises(ValueError):
                await deliver(client, SENDER, bad, CASES[1])
        await deliver(client, SENDER, ["after@example.org"], CASES[1])  # no MAIL left open

    run_client(smtp_sink, send)
    assert [got.rcpt_tos for got in smtp_sink.wait_for(1)] == [["after@example.org"]]


MARKER = b"X-Marker: the body is on its way\r\n"


@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_a_body_that_gets_no_answer_fails_as_in_sendmail(smtp_sink: SmtpSink, fault: str) -> None:
    """A server that goes silent after the body, or away during it: the same error as with
    sendmail, and a closed client."""
    raw = MARKER + b"\r\nHallo\r\n"
    outcomes: list[tuple[type[BaseException], bool]] = []
    with Proxy(smtp_sink.host, smtp_sink.port) as proxy:
        for send in (
            lambda c: c.sendmail(SENDER, ["p@example.org"], raw),
            lambda c: deliver(c, SENDER, ["p@example.org"], raw),
        ):
            if fault == "stall":
                proxy.stall_on(MARKER)
            else:
                proxy.cut_on(MARKER, direction="up", after=4)

            async def once(client: aiosmtplib.SMTP, send: Any = send) -> None:
                with pytest.raises(aiosmtplib.SMTPException) as info:
                    await send(client)
                outcomes.append((type(info.value), client.is_connected))
                await client.connect()  # the session's quit needs a connection

            run_client(proxy, once, timeout=1)
    assert proxy.stalls + proxy.cuts == 2  # the fault happened both times
    assert outcomes[0] == outcomes[1], outcomes
    assert outcomes[0][1] is False  # a connection in an unknown state is not used again


@pytest.mark.parametrize(
    ("stage", "code", "error"),
    [
        ("MAIL", 451, aiosmtplib.SMTPSenderRefused),
        ("RCPT", 550, aiosmtplib.SMTPRecipientsRefused),
        ("DATA", 451, aiosmtplib.SMTPDataError),
        ("DATA", 554, aiosmtplib.SMTPDataError),
        # A refused DATA command leaves the connection open for the RSET, also on 421.
        ("DATA command", 451, aiosmtplib.SMTPDataError),
        ("DATA command", 421, aiosmtplib.SMTPDataError),
    ],
)
def test_failures_raise_what_sendmail_raises(
    smtp_sink: SmtpSink, stage: Any, code: int, error: type[Exception]
) -> None:
    raw = CASES[1]
    caught: list[tuple[type[Exception], int]] = []

    async def send_three(client: aiosmtplib.SMTP) -> None:
        await deliver(client, SENDER, ["first@example.org"], raw)
        for send in (client.sendmail, lambda *a: deliver(client, *a)):
            smtp_sink.fail_next(1, code=code, text="4.3.0 try later", stage=stage)
            with pytest.raises(error) as info:
                await send(SENDER, ["refused@example.org"], raw)
            exc = info.value
            codes = [r.code for r in exc.recipients] if hasattr(exc, "recipients") else [exc.code]
            caught.append((type(exc), codes[0]))
        # The envelope was reset: the next mail on the same connection goes through.
        await deliver(client, SENDER, ["after@example.org"], raw)

    run_client(smtp_sink, send_three)
    assert caught == [(error, code), (error, code)]
    assert [got.rcpt_tos for got in smtp_sink.wait_for(2)] == [
        ["first@example.org"],
        ["after@example.org"],
    ]
