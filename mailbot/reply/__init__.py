"""Compose and render replies from templates (pure)."""
