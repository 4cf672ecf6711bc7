"""Bytes to text when the declared charset is missing, unknown or wrong.

Mail clients still send windows-1252 without saying so, declare "us-ascii" over 8-bit bytes,
or label UTF-8 as Latin-1 (which then reads "FÃ¼r"). A strict decode with the declared
charset is trusted only when it succeeds and does not produce typical UTF-8 mojibake; else
UTF-8 is tried, and then charset-normalizer guesses from the bytes. Detection only runs on the
rare failing case and on a bounded sample, so ordinary mail costs one decode.
"""

from __future__ import annotations

import codecs
import re

# Charset labels that mail clients write but Python does not know, mapped to a codec.
_CHARSET_ALIASES = {
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "unknown": "utf-8",
    "x-user-defined": "cp1252",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "ansi_x3.4-1968": "ascii",
    "utf8": "utf-8",
}

# Latin-1 decodes any bytes, but 0x80-0x9f are control characters there and curly quotes and
# dashes in windows-1252: real mail labelled Latin-1 (or guessed so) is windows-1252.
_WIDEN = {"latin_1": "cp1252", "iso8859_1": "cp1252", "ascii": "cp1252"}
_MOJIBAKE = re.compile("[ÃÂ][\x80-\xbf]|â€[\x80-\xbf™œ“”˜]")
DETECT_SAMPLE = 64_000


def codec(charset: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None when unknown."""
    if not charset:
        return None
    name = str(charset).strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _strict(data: bytes, name: str) -> str | None:
    try:
        return data.decode(name)
    except (UnicodeDecodeError, LookupError):
        return None


def detect(data: bytes) -> str | None:
    """The codec charset-normalizer finds most plausible for `data` (None if it has no idea).

    Imported here, on the rare mail that needs it: every process that reads mail paid its
    16 ms at start, the read-ahead helper on the way to a rush's first replies."""
    from charset_normalizer import from_bytes

    try:
        best = from_bytes(data[:DETECT_SAMPLE]).best()
    except Exception:
        return None
    if best is None:
        return None
    name = codec(best.encoding)
    return _WIDEN.get(name or "", name)


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, bool]:
    """Decode with the declared charset if it fits, else UTF-8, else the detected charset.

    Returns the text and whether a strict decode succeeded (False means characters were
    replaced and the result may be garbled).
    """
    declared = codec(charset)
    declared = "cp1252" if declared in ("latin_1", "iso8859_1") else declared
    if declared:
        text = _strict(data, declared)
        if text is not None and not (declared != "utf-8" and _MOJIBAKE.search(text)):
            return text, True
    text = _strict(data, "utf-8")
    if text is not None:
        return text, True
    guessed = detect(data)
    for name in (guessed, "cp1252"):
        text = _strict(data, name) if name else None
        if text is not None:
            return text, True
    return data.decode(guessed or "cp1252", errors="replace"), False
