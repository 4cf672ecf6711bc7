"""Property tests: no input bytes make `parse_mail` fail internally or run away.

`parse_mail` catches everything as a last resort and reports "parser error: …" in
`needs_review`; these tests assert that this last resort is never needed, for arbitrary bytes,
for mail-shaped random input, and for real corpus mails cut, spliced and bit-flipped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.models import ParsedMail
from mailbot.parse import parse_mail

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("MAILBOT_CORPORA") or REPO.parent / "shared" / "corpora")
HOLDOUT = REPO / "tests" / "data" / "parse-holdout"


def _seeds() -> list[bytes]:
    """A spread of real mails: the holdout set plus every 40th corpus file (bounded size)."""
    files = sorted(HOLDOUT.glob("*.eml"))
    if CORPORA.is_dir():
        corpus = sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.suffix != ".md")
        files += [p for p in corpus[::40] if p.stat().st_size < 200_000]
    return [p.read_bytes() for p in files]


SEEDS = _seeds()
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes) -> ParsedMail:
    start = time.perf_counter()
    parsed = parse_mail(raw)
    assert isinstance(parsed, ParsedMail)
    assert not (parsed.needs_review or "").startswith("parser error"), parsed.needs_review
    assert time.perf_counter() - start < 5.0
    return parsed


@FAST
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


_HEADER_NAMES = st.sampled_from(
    ["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "Return-Path",
     "Auto-Submitted", "Precedence", "Content-Disposition", "MIME-Version", "X-Autoreply"]
)  # fmt: skip
_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            'multipart/mixed; boundary="b"',
            "multipart/report; report-type=delivery-status; boundary=b",
            "message/rfc822",
            "text/html; charset=x-unknown",
            "text/plain; charset=utf-7",
            "base64",
            "quoted-printable",
            "=?utf-8?B?w7w=?= =?bogus?Q?=FF?=",
            "<>",
            "auto-replied",
        ]
    ),
)


@FAST
@given(
    st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=12),
    st.binary(max_size=3000),
)
def test_mail_shaped_input(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "\r\n".join(f"{k}: {v}" for k, v in headers).encode("utf-8", "surrogatepass")
    _check(head + b"\r\n\r\n--b\r\n" + body + b"\r\n--b--\r\n")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        if not raw:
            break
        pos = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "duplicate", "delete"]))
        if action == "flip":
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del raw[pos:]
        elif action == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif action == "duplicate":
            end = min(len(raw), pos + draw(st.integers(1, 400)))
            raw[pos:pos] = raw[pos:end] * draw(st.integers(1, 20))
        else:
            del raw[pos : pos + draw(st.integers(1, 200))]
    return bytes(raw)


@FAST
@given(mutated())
def test_mutated_real_mails(raw: bytes) -> None:
    _check(raw)


def test_deeply_nested_and_huge_mail_is_bounded() -> None:
    depth = 500
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    nested = (
        b"From: a@example.org\r\nSubject: x\r\n"
        + head.encode()
        + b"Content-Type: text/plain\r\n\r\nhallo\r\n"
    )
    _check(nested)
    forwards = b"From: a@example.org\r\nContent-Type: message/rfc822\r\n\r\n" * 200
    _check(forwards + b"Subject: Anmeldung\r\n\r\nich melde mich an\r\n")
    huge = b"From: a@example.org\r\nSubject: Anmeldung\r\n\r\n" + b"Ich melde mich an. " * 600_000
    _check(huge)
    wide = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + (
        b"--b\r\nContent-Type: text/plain\r\n\r\nTeil\r\n" * 5000
    )
    _check(wide)
