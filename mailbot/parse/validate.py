"""Is this string a usable e-mail address? Syntax only (email-validator, no DNS).

A participant's address ends up in the database and in the To: of a confirmation, so a typo
like "anna.meier@stadt-essen" or "anna meier@x.example" must be caught here and reported for
review rather than produce a reply that bounces. No DNS lookups: parsing stays pure and fast.

Most addresses are plain: letters, digits, dots, "_", "+" and "-" before the @, and host
labels of letters, digits and inner hyphens under a top-level domain of letters. Such an
address passes every check email-validator makes (tests/test_parse_general.py holds the two
to each other over generated addresses), so `_PLAIN` accepts it without asking: the full
check costs about 0.1 ms, mostly Unicode and IDNA work a plain ASCII address does not need,
and every mail of a rush brings a new address (bench/rush.py). Anything else still goes
through email-validator.
"""

from __future__ import annotations

import re
from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, validate_email

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(rf"[a-z0-9_+-]{{1,64}}(?:\.[a-z0-9_+-]+)*@(?:{_LABEL}\.)+[a-z]{{2,63}}")


def _plain(address: str) -> bool:
    """True when `address` is valid by syntax alone, surely; False means "ask the validator"."""
    if len(address) > 254 or not _PLAIN.fullmatch(address):
        return False
    local, domain = address.split("@")
    # "--" could be an IDNA label ("xn--…") or one IDNA forbids: the validator decides.
    return len(local) <= 64 and "--" not in domain and not _reserved(domain)


def _reserved(domain: str) -> bool:
    """Whether email-validator refuses the domain as special-use ("localhost", "….onion");
    read from its own list, which a newer version may extend. "test" it allows, as we ask for
    a test environment."""
    return any(
        domain == name or domain.endswith(f".{name}")
        for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
        if name != "test"
    )


@lru_cache(maxsize=4096)
def valid_address(address: str) -> str | None:
    """The address, lower-cased, if its syntax is valid; otherwise None."""
    address = address.strip().strip("<>.,;:").lower()
    if not address or len(address) > 254:
        return None
    if _plain(address):
        return address
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except (EmailNotValidError, ValueError, TypeError, UnicodeError):
        return None
    return address
