"""Commands for organisers and admins: status, lists, corrections, privacy, import."""
