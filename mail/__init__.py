"""The mail adapter: renders the domain's `mail` outbox messages and sends them over SMTP."""
