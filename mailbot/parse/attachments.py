"""The parts of a mail that are not its text: forwarded mails and files.

A secretary may forward the boss's registration "as attachment" (message/rfc822), which the
parser reads like a mail of its own; a PDF form or a photo is never read, but its name is
kept so that the organiser can look at it when the text points to it.
"""

from __future__ import annotations

from email.message import Message

from mailbot.parse.mime import content_type, decode_header_value, is_attachment, iter_parts


def attached_mails(msg: Message, limit: int = 3) -> list[Message]:
    """Mails attached as message/rfc822 (forwarded "as attachment"), at most `limit`."""
    found: list[Message] = []
    for part, _depth in iter_parts(msg):
        if content_type(part) != "message/rfc822":
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            found.append(inner)
            if len(found) >= limit:
                break
    return found


def attachment_names(msg: Message, limit: int = 20) -> list[str]:
    """File names (or types) of the parts that are skipped as attachments."""
    names: list[str] = []
    for part, _depth in iter_parts(msg):
        ctype = content_type(part)
        if ctype.startswith("multipart/") or not (
            is_attachment(part) or not ctype.startswith(("text/", "message/"))
        ):
            continue
        try:
            name = decode_header_value(part.get_filename() or "") or ctype
        except Exception:
            name = ctype
        names.append(name[:200])
        if len(names) >= limit:
            break
    return names
