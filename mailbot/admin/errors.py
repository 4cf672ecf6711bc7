"""The one error of the admin commands, in a module of its own: `mailbot`'s command line
catches it for every command, and importing `actions` for that would import the store and
SQLAlchemy before any command runs (`poll --once` forks its read-ahead before those)."""

from __future__ import annotations


class AdminError(Exception):
    """A request an admin made that cannot be carried out, explained in one line."""
