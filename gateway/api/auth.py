"""Bearer tokens on the REST API (and on `/metrics` from afar): 401 without a token or with a
revoked one, 403 with one we never issued.

A revoked token is 401, not 403: its holder was let in before and must now get a new one
(CONTRACT.md, Trust). Each request looks its token up afresh (`crm.services.tokens`), so a revocation holds
at once, in every process.
"""

from __future__ import annotations

from ipaddress import ip_address

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.http import error_response
from gateway.keys import CRM, STORE

PUBLIC = frozenset({"/api/v1/openapi.json"})
TOKEN_NAME = web.RequestKey("token_name", str)
_CHALLENGE = 'Bearer realm="crm"'
# Headers a proxy adds when it passes on someone else's request.
_FORWARDED = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


@web.middleware
async def bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or request.method == "OPTIONS":
        return await handler(request)
    refused = await refusal(request)
    if refused is not None:
        return refused
    return await handler(request)


async def refusal(request: web.Request) -> web.Response | None:
    """The answer to a request without a valid bearer token, or None (and the token's name in
    `request[TOKEN_NAME]`) when its token is good."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(
            401,
            "unauthorized",
            "send Authorization: Bearer TOKEN (make one with `crm-gateway token create NAME`)",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    async with request.config_dict[STORE].looking_up() as s:
        holder = await request.config_dict[CRM].tokens.holder(s, token.strip())
    if holder is None:
        return error_response(403, "forbidden", "this token is unknown")
    if holder.revoked:
        return error_response(
            401,
            "unauthorized",
            "this token was revoked; ask for a new one (`crm-gateway token create NAME`)",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    request[TOKEN_NAME] = holder.name
    return None


async def metrics_refusal(request: web.Request) -> web.Response | None:
    """Who may read `/metrics`: a scraper on this machine, or anyone with a valid API token.
    None when `request` may; otherwise the API's own 401 or 403."""
    if from_this_machine(request):
        return None
    return await refusal(request)


def from_this_machine(request: web.Request) -> bool:
    """Whether the request's TCP peer is a loopback address, forwarding nobody's request.

    `request.remote` is the TCP peer here: nothing sets it from `X-Forwarded-For` (trusted proxies
    are another issue's, CRM_TRUSTED_PROXIES). A proxy on this machine is a loopback peer too, so
    a request it forwards (it says so in a header) counts as from afar: else everyone behind the
    proxy could read the metrics.
    """
    if request.remote is None or any(name in request.headers for name in _FORWARDED):
        return False
    try:
        peer = ip_address(request.remote)
    except ValueError:  # not an IP address (a Unix socket's path, say)
        return False
    mapped = getattr(peer, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return peer.is_loopback or (mapped is not None and mapped.is_loopback)
