"""Compose and render replies from templates (pure).

`SCENARIOS` names every reply an admin can preview; it lives here, free of heavy imports, so
the command line can offer the names without loading the renderer.
"""

from mailbot.decide.rules import Outcome, ReplyKind

SCENARIOS: tuple[str, ...] = (
    *(o.value for o in Outcome),
    *(k.value for k in ReplyKind if k is not ReplyKind.OUTCOMES),
    "late_waitlisted",  # a late registration queued under late_policy = "waitlist"
    "several_people",  # one mail registering two people: one reply listing both
    "series",  # one person for every workshop of the series
    "forward",  # the organisers' copy of a participant's question
)
