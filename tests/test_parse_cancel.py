"""Cancellations as people really write them, above all the one word our replies ask for."""

from __future__ import annotations

import pytest
from helpers import mail

from mailbot.parse import parse_mail

QUOTE = "\n\nAm 10.01.2018 schrieb KoSI-Lab:\n> Anna Arndt ist für die 2. Werkstatt angemeldet.\n"


@pytest.mark.parametrize(
    "body",
    [
        "Abmeldung",
        "Abmeldung.",
        "Abmeldung bitte",
        "cancel",
        "Cancellation, please.",
        "Ich kann leider doch nicht kommen.",
        "Hiermit melde ich mich ab.",
    ],
)
def test_a_short_reply_to_our_mail_cancels(body: str) -> None:
    raw = mail(
        body + QUOTE,
        sender="Anna Arndt <anna@example.org>",
        subject="Re: Anmeldung 2. Werkstatt",
        headers={"In-Reply-To": "<123@ils-forschung.example>"},
    )
    parsed = parse_mail(raw)
    assert parsed.intent == "cancel"
    assert [p.email for p in parsed.participants] == ["anna@example.org"]


def test_cancel_subject_with_a_sentence() -> None:
    raw = mail(
        "Ich kann leider doch nicht kommen.",
        sender="Anna Arndt <anna@example.org>",
        subject="Abmeldung",
    )
    assert parse_mail(raw).intent == "cancel"


def test_a_thank_you_is_not_a_cancellation() -> None:
    raw = mail("Danke!" + QUOTE, sender="Anna Arndt <anna@example.org>", subject="Re: Abmeldung")
    assert parse_mail(raw).intent != "cancel"


def test_secretary_cancels_someone_else() -> None:
    raw = mail(
        "Sehr geehrte Damen und Herren,\nhiermit melde ich folgende Person von der "
        "2. Werkstatt ab: Dr. Hans Huber, hans.huber@stadt.example.\n\nMit freundlichen "
        "Grüßen\nSekretariat",
        sender="Sekretariat <sek@stadt.example>",
        subject="Werkstatt 22.2.",
    )
    parsed = parse_mail(raw)
    assert parsed.intent == "cancel"
    assert [(p.name, p.email) for p in parsed.participants] == [
        ("Hans Huber", "hans.huber@stadt.example")
    ]
