"""Persist messages, registrations and the outbox (SQLAlchemy Core)."""
