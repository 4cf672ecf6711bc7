"""Read new mail from the IMAP inbox (adapter)."""
