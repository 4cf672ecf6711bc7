"""Who takes part: the people a registration, change or cancellation is about.

The rules, in the words of the labelled corpus: each person's address is the one written for
them in the body, otherwise the From address; a secretary or team lead who registers others is
not a participant unless they say they come too; the organisation comes from a form field, the
signature, or a phrase in the text, and is given to colleagues on the same (non-freemail)
domain. Missing names or addresses are reported as review reasons, never guessed.
"""

from __future__ import annotations

from email.message import Message

from mailbot.parse import fields, orgs, people
from mailbot.parse.mime import addresses
from mailbot.parse.quotes import body_without_signature
from mailbot.parse.validate import valid_address

_FREEMAIL = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "web.de",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "t-online.de",
        "yahoo.com",
        "yahoo.de",
        "hotmail.com",
        "hotmail.de",
        "outlook.com",
        "outlook.de",
        "live.com",
        "live.de",
        "icloud.com",
        "me.com",
        "aol.com",
        "freenet.de",
        "posteo.de",
        "mailbox.org",
        "arcor.de",
        "example.com",
        "example.net",
        "example.org",
    ]
)


def _domain(address: str | None) -> str:
    return address.rsplit("@", 1)[-1] if address and "@" in address else ""


def find(
    msg: Message, own: str, signature: str, review: list[str]
) -> tuple[list[people.Person], dict[str, str]]:
    """Participants with organisations, plus the form fields of the first form block."""
    sender_pairs = addresses(msg, "From")
    from_name, from_addr = sender_pairs[0] if sender_pairs else ("", "")
    names = {a: n for h in ("From", "To", "Cc", "Reply-To") for n, a in addresses(msg, h) if n}
    inbox = {a for _, a in addresses(msg, "To")} - {from_addr}
    inbox_domains = {_domain(a) for a in inbox} - {_domain(from_addr)}
    sender = people.Person(people.sender_name(from_name, signature), from_addr)
    if not signature:
        signature = people.signature_after_name(own, sender.name)
    text = body_without_signature(own, signature)
    org = orgs.signature_org(signature, sender.name) or orgs.inline_org(text)
    forms = people.form_people(own)
    found: list[people.Person] = []
    form0: dict[str, str] = {}
    for entry in forms:  # shared answers (lunch, role, notes) may sit in any block
        for key, value in entry.items():
            form0.setdefault(key, value)
    if forms:
        for entry in forms:
            written = (entry.get("email") or "").lower()
            match = people.EMAIL_RE.search(written)
            email = match.group(0) if match else (from_addr if len(forms) == 1 else "")
            if "@" in written and not (match and valid_address(match.group(0))):
                review.append(f"e-mail address not valid: {written[:80]}")
            name = people.clean_name(entry.get("name")) or (
                sender.name if email == from_addr else None
            )
            found.append(people.Person(name, email, orgs.form_org(entry.get("org"))))
    else:
        body = [
            p
            for p in people.body_people(own, names, inbox)
            if _domain(p.email) not in inbox_domains
        ]
        for person in body:
            if person.name is None and person.email == from_addr:
                person.name = sender.name
        found = [p for p in body if p.name]
        substitute = bool(fields.SUBSTITUTE.search(own))
        proxy = people.acts_for_other(text)
        # Someone who lists other people comes too only when they say so.
        include_sender = substitute or (people.writes_for_self(text) and not people.not_self(text))
        if not found:
            # A proxy's own name is never the participant's; unknown stays None (review).
            name = people.proxy_name(text) if proxy else sender.name
            found = [people.Person(name, from_addr)]
        elif include_sender and not any(
            p.email == from_addr or people.same_person(p.name, sender.name) for p in found
        ):
            found.insert(0, sender)
    found = people.dedupe([p for p in found if p.email or p.name])
    for person in found:
        is_sender = person.email == from_addr or people.same_person(person.name, sender.name)
        same_org = _domain(person.email) == _domain(from_addr) and (
            _domain(from_addr) not in _FREEMAIL
        )
        if not person.org and (is_sender or same_org):
            person.org = org
    bad = [p.email for p in found if p.email and not valid_address(p.email)]
    if bad:
        review.append(f"e-mail address not valid: {bad[0][:80]}")
    if not found or any(not p.email for p in found):
        review.append("no participant e-mail found")
    elif any(not p.name for p in found):
        review.append("participant name missing")
    return found, form0
