"""Bearer tokens on the REST API: 401 without one, 403 with one we did not issue."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from crm.tokens import token_name
from gateway.http import error_response
from gateway.keys import STORE

PUBLIC = frozenset({"/api/v1/openapi.json"})
TOKEN_NAME = web.RequestKey("token_name", str)


@web.middleware
async def bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or request.method == "OPTIONS":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(
            401,
            "unauthorized",
            "send Authorization: Bearer TOKEN (make one with `crm-gateway token create NAME`)",
            headers={"WWW-Authenticate": 'Bearer realm="crm"'},
        )
    async with request.config_dict[STORE].looking_up() as s:
        name = await token_name(s, token.strip())
    if name is None:
        return error_response(403, "forbidden", "this token is unknown or revoked")
    request[TOKEN_NAME] = name
    return await handler(request)
