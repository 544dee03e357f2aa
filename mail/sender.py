"""The outbox sender for mail: renders each `mail` message from the store and hands it to the SMTP
server (`crm.delivery.outbox_worker` records the outcome and retries).

Failure kinds:
- connection refused, timeouts, a dropped connection, 4xx replies (the server is busy or
  greylisting): retried with backoff (1 s doubling to 5 minutes, ±20%) for as long as it takes;
- 5xx replies (no such mailbox, relaying refused, bad credentials): recorded as failed with the
  server's reply, never retried;
- a server that cannot do what we are configured for (STARTTLS): retried, so that the mail
  waits for the operator to fix the configuration rather than being lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from crm.delivery.outbox import Delivery
from crm.delivery.outbox_worker import Failed, OutboxWorker, Outcome, Sent, Skipped
from crm.service import Crm
from crm.storage.store import Store
from mail.lead_mail import LeadGone, lead_mail

log = logging.getLogger("mail")

CHANNEL = "mail"
IMPLICIT_TLS_PORT = 465


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to hand mail over; `starttls` upgrades a plain connection (port 587)."""

    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout: float = 30.0

    @property
    def implicit_tls(self) -> bool:
        return self.port == IMPLICIT_TLS_PORT


class MailSender(OutboxWorker):
    """Drains the `mail` channel of the outbox; one per gateway process."""

    channel = CHANNEL

    def __init__(self, server: SmtpServer, store: Store, crm: Crm, *, sender: str) -> None:
        super().__init__(store, crm.clock, concurrency=5)
        self.server = server
        self.sender = sender
        self.cards = crm.cards

    async def deliver(self, delivery: Delivery) -> Outcome:
        if delivery.kind != "lead":
            return Failed(f"no mail is made for outbox messages of kind {delivery.kind!r}")
        try:
            async with self.store.looking_up() as s:
                message = await lead_mail(
                    s,
                    int(delivery.payload["lead_id"]),
                    to=str(delivery.payload["to"]),
                    sender=self.sender,
                    cards=self.cards,
                )
        except LeadGone as exc:
            return Skipped(str(exc))
        server = self.server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.user,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=server.starttls and not server.implicit_tls,
                timeout=server.timeout,
            )
        except SMTPRecipientsRefused as exc:
            replies = [(r.code, r.message) for r in exc.recipients]
            text = "; ".join(f"{code} {reply}" for code, reply in replies)
            if replies and all(code >= 500 for code, _ in replies):
                return Failed(f"the mail server refused the recipient: {text}")
            return self.retry(delivery, f"recipient deferred: {text}")
        except SMTPResponseException as exc:
            if exc.code >= 500:
                return Failed(f"the mail server refused the mail: {exc.code} {exc.message}")
            return self.retry(delivery, f"{exc.code} {exc.message}")
        except SMTPNotSupported as exc:
            log.warning("mail server %s:%s: %s (check CRM_SMTP_*)", server.host, server.port, exc)
            return self.retry(delivery, f"not supported by the server: {exc}")
        except (SMTPException, OSError, TimeoutError) as exc:
            return self.retry(delivery, f"{type(exc).__name__}: {exc}")
        return Sent()
