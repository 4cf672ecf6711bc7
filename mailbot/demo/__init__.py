"""The self-contained demo: in-memory mail servers, sample mails, the real pipeline."""
