"""The email policy replies are built with: the stdlib default, minus a per-header class build.

Why: `email.headerregistry.HeaderRegistry.__getitem__` creates a brand-new class with
`type(...)` for every header it parses, and a reply sets about 25 headers (the MIME parts'
Content-Type, Content-Transfer-Encoding, MIME-Version and parameters included). In the rush
benchmark (bench/rush.py) that class building was the largest single cost of composing a
reply. The classes it builds depend only on the header name, so they are built once per name
here. Everything else — parsing, folding, defects, the bytes on the wire — is the stdlib's.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage


class CachingHeaderRegistry(HeaderRegistry):
    """A `HeaderRegistry` that builds the specialised class of each header name only once."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type) -> None:
        super().map_to_type(name, cls)
        self._classes.pop(name.lower(), None)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


REPLY_POLICY = policy.default.clone(header_factory=CachingHeaderRegistry())


def new_message() -> EmailMessage:
    """An empty `EmailMessage` on `REPLY_POLICY` (its MIME parts inherit the policy)."""
    return EmailMessage(policy=REPLY_POLICY)
