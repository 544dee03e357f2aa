"""CORS for what web pages of other sites call with `fetch` (CRM_FORM_ALLOWED_ORIGINS): `/leads`.

Only a browser's scripts are concerned: a plain HTML form posts from any site, as curl can, and
the rate limit and the honeypot are what stand against spam. An origin that is allowed gets
`Access-Control-Allow-Origin` on every answer of these routes, errors included, so that a page
can show what was wrong; others get no CORS headers, and their browsers hide the answer.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.http import error_response

PATHS = frozenset({"/leads"})
METHODS = "POST"
HEADERS = "Content-Type, Accept, Accept-Language, Content-Language, X-Requested-With"
MAX_AGE = "7200"  # seconds a browser may keep a preflight answer (Chromium's ceiling)


class Cors:
    """The origins allowed to call `PATHS` from scripts; `*` allows every origin."""

    def __init__(self, origins: frozenset[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin.rstrip("/").lower() in self.origins)

    def headers(self, origin: str) -> dict[str, str]:
        if self.any:
            return {"Access-Control-Allow-Origin": "*"}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to `OPTIONS`: which origin, method and headers a script may use."""
        origin = request.headers.get("Origin")
        if origin is None:
            return web.Response(status=204, headers={"Allow": f"OPTIONS, {METHODS}"})
        wanted = request.headers.get("Access-Control-Request-Method", "")
        if not self.allows(origin) or wanted.upper() not in ("", METHODS):
            return error_response(
                403,
                "forbidden",
                f"{origin} may not post here; the gateway's CRM_FORM_ALLOWED_ORIGINS must list it",
                headers={"Vary": "Origin"},
            )
        return web.Response(
            status=204,
            headers={
                **self.headers(origin),
                "Access-Control-Allow-Methods": METHODS,
                "Access-Control-Allow-Headers": HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
            },
        )


CORS = web.AppKey("cors", Cors)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adds the CORS headers to every answer of `PATHS` (outside the error middleware, so that
    error answers get them too); preflights are answered by their own route."""
    response = await handler(request)
    if request.path in PATHS and request.method != "OPTIONS":
        origin = request.headers.get("Origin")
        cors = request.config_dict[CORS]
        if cors.allows(origin):
            assert origin is not None
            response.headers.update(cors.headers(origin))
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        elif not cors.any:
            response.headers["Vary"] = "Origin"
    return response
