"""The domain's front door: one object that holds the services, built once by whoever serves."""

from __future__ import annotations

from crm.agents import Agents
from crm.call_flow import CallFlow
from crm.clients import Clients
from crm.clock import Clock, SystemClock


class Crm:
    """The services of the domain, sharing the default region and the clock."""

    def __init__(self, region: str = "US", clock: Clock | None = None) -> None:
        self.region = region
        self.clock: Clock = clock or SystemClock()
        self.clients = Clients(region, self.clock)
        self.agents = Agents(region, self.clock)
        self.calls = CallFlow(self.clients, self.clock)
