"""Is this string a usable e-mail address? Syntax only (email-validator, no DNS).

A participant's address ends up in the database and in the To: of a confirmation, so a typo
like "anna.meier@stadt-essen" or "anna meier@x.example" must be caught here and reported for
review rather than produce a reply that bounces. No DNS lookups: parsing stays pure and fast.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


@lru_cache(maxsize=4096)
def valid_address(address: str) -> str | None:
    """The address, lower-cased, if its syntax is valid; otherwise None."""
    address = address.strip().strip("<>.,;:").lower()
    if not address or len(address) > 254:
        return None
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except (EmailNotValidError, ValueError, TypeError, UnicodeError):
        return None
    return address
