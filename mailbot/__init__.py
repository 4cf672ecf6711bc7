"""mailbot: answers registration mails for small events, the way a careful organiser would."""

__version__ = "0.1.0"
