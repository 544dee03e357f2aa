"""The domain's front door: one object that holds the services, built once by whoever serves.

Use cases are methods of the objects on `Crm`; building blocks are functions. Adapters (gateway,
bots, mail, telephony) reach the use cases only through `Crm`; the functions serve the services
(`timeline.record`, `notices.*`, `outbox.enqueue`) or the adapters' own machinery (the outbox
workers, reading a routing file). A method takes the caller's unit of work (session) first and
reads the time from the shared clock, never from an argument.
"""

from __future__ import annotations

from crm.domain.clock import Clock, SystemClock
from crm.services.agents import Agents
from crm.services.applied_updates import AppliedUpdates
from crm.services.call_flow import CallFlow
from crm.services.calls import CallLog
from crm.services.cards import Cards
from crm.services.clients import Clients
from crm.services.conversations import Conversations
from crm.services.deals import Deals
from crm.services.handover import Handover
from crm.services.intake import LeadIntake
from crm.services.lead_details import LeadDetails
from crm.services.merge import Merger
from crm.services.notes import Notes
from crm.services.ring_plans import FirstRings
from crm.services.routing import NO_RULES, Router, RoutingRules
from crm.services.sent_messages import SentMessages
from crm.services.tasks import Tasks
from crm.services.tokens import Tokens


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
        self.deals = Deals(self.clock)
        self.call_log = CallLog(self.deals, self.clock)
        self.notes = Notes(self.call_log, self.clock)
        self.tasks = Tasks(self.clock)
        self.cards = Cards(self.clock)
        self.merger = Merger(self.clock)
        self.leads = LeadIntake(
            self.clients, self.routing, self.deals, self.notes, self.clock, mail_to=lead_mail_to
        )
        self.lead_details = LeadDetails(self.clients, self.clock)
        self.conversations = Conversations(self.clients, self.routing, self.merger, self.clock)
        self.handover = Handover(self.clock)
        self.tokens = Tokens(self.clock)
        self.sent_messages = SentMessages(self.clock)
        self.applied_updates = AppliedUpdates(self.clock)
