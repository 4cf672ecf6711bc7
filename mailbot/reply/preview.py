"""`mailbot preview`: show an admin exactly what a participant would receive, with sample data.

It builds the real message (the same `build_message` the pipeline uses), so what the preview
shows is what would be sent: headers, text part, HTML part and the calendar entries.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from pathlib import Path

from mailbot.config import Config
from mailbot.reply import SCENARIOS
from mailbot.reply.message import build_message
from mailbot.reply.samples import SAMPLE_NOW, sample_forward, sample_request

__all__ = ["SCENARIOS", "preview"]
_SHOWN_HEADERS = ("From", "To", "Reply-To", "Subject", "In-Reply-To", "Auto-Submitted")


def preview_message(
    config: Config, scenario: str, language: str, event_id: str | None = None
) -> EmailMessage:
    if scenario == "forward":
        message = sample_forward(config)
        if message is None:
            raise ValueError("the sample question has no address to forward")
        return message
    return build_message(sample_request(scenario, language, config, event_id), config, SAMPLE_NOW)


def preview(
    config: Config,
    scenario: str,
    language: str = "de",
    event_id: str | None = None,
    html_path: Path | None = None,
    eml_path: Path | None = None,
) -> str:
    """The headers and the text part as a terminal shows them; optionally write HTML and .eml."""
    message = preview_message(config, scenario, language, event_id)
    lines = [f"{name}: {message[name]}" for name in _SHOWN_HEADERS if message[name] is not None]
    attachments = [p.get_filename() or p.get_content_type() for p in message.iter_attachments()]
    if attachments:
        lines.append(f"Attachments: {', '.join(attachments)}")
    text = message.get_body(("plain",))
    lines += ["", str(text.get_content()) if text is not None else ""]
    html = message.get_body(("html",))
    if html_path is not None:
        if html is None:
            raise ValueError(f"the {scenario} mail has no HTML part")
        html_path.write_text(str(html.get_content()), encoding="utf-8")
    if eml_path is not None:
        eml_path.write_bytes(message.as_bytes(policy=policy.SMTP))  # as the outbox stores it
    return "\n".join(lines)
