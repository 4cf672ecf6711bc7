"""Decide what a mail means for the registrations (pure rules)."""
