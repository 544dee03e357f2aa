"""CRM_ROUTING_FILE at start-up: parsed once into `crm.services.routing.RoutingRules`, and checked against
the agents in the store. Either problem stops start-up with one line naming the variable."""

from __future__ import annotations

from crm.services.routing import NO_RULES, RoutingFileError, RoutingRules, check_agents, load_rules
from crm.storage.store import Store
from gateway.settings import Settings, SettingsError

VARIABLE = "CRM_ROUTING_FILE"


def load(settings: Settings) -> RoutingRules:
    """The rules of CRM_ROUTING_FILE (none when unset), or `SettingsError` if it does not parse."""
    if settings.routing_file is None:
        return NO_RULES
    try:
        return load_rules(settings.routing_file, settings.default_region)
    except RoutingFileError as exc:
        raise SettingsError(f"{VARIABLE}: {exc}") from None


async def verify(store: Store, rules: RoutingRules) -> None:
    """`SettingsError` when a rule names a phone number no agent has."""
    if not rules.rules:
        return
    try:
        async with store.reading() as s:
            await check_agents(s, rules)
    except RoutingFileError as exc:
        raise SettingsError(f"{VARIABLE}: {exc}") from None
