"""Deliver the outbox over SMTP (adapter)."""
