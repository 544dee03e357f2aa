"""The domain's front door: one object that holds the services, built once by whoever serves."""

from __future__ import annotations

from crm.domain.clock import Clock, SystemClock
from crm.services.agents import Agents
from crm.services.call_flow import CallFlow
from crm.services.clients import Clients
from crm.services.conversations import Conversations
from crm.services.intake import LeadIntake
from crm.services.ring_plans import FirstRings
from crm.services.routing import NO_RULES, Router, RoutingRules


class Crm:
    """The services of the domain, sharing the default region, the clock and the routing rules.

    `lead_mail_to`: the mailbox new leads are mailed to (None when mail is off).
    """

    def __init__(
        self,
        region: str = "US",
        clock: Clock | None = None,
        *,
        routing: RoutingRules = NO_RULES,
        lead_mail_to: str | None = None,
    ) -> None:
        self.region = region
        self.clock: Clock = clock or SystemClock()
        self.clients = Clients(region, self.clock)
        self.agents = Agents(region, self.clock)
        self.routing = Router(routing, self.clock)
        self.calls = CallFlow(self.clients, self.clock)
        self.first_rings = FirstRings(self.clients, self.routing)
        self.leads = LeadIntake(self.clients, self.routing, self.clock, mail_to=lead_mail_to)
        self.conversations = Conversations(self.clients, self.routing, self.clock)
