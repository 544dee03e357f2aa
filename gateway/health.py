"""`/healthz` for load balancers and `/metrics` for Prometheus."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import metrics_refusal
from gateway.http import error_response
from gateway.keys import METRICS, STORE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    if await request.app[STORE].ping():
        return web.json_response({"status": "ok"})
    return error_response(503, "unavailable", "the database does not answer")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """To a scraper on this machine, or with an API token (CONTRACT.md, Trust)."""
    refused = await metrics_refusal(request)
    if refused is not None:
        return refused
    return request.app[METRICS].render()
