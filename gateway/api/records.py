"""`/api/v1/calls`, `/leads`, `/tasks`, `/agents`: the logs and lists managers read."""

from __future__ import annotations

from aiohttp import web

from crm.agents import AgentView
from crm.calls import get_call, list_calls
from crm.leads import list_leads
from crm.tasks import list_tasks
from gateway.api import render, schemas
from gateway.http import path_id, query_bool, query_int, query_limit, query_time, reply
from gateway.keys import CRM, STORE

routes = web.RouteTableDef()


@routes.get("/calls")
async def calls(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await list_calls(
            s,
            client_id=query_int(request, "client_id"),
            status=request.query.get("status") or None,
            since=query_time(request, "since"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.CallsPage(calls=[render.call(c) for c in page.items], next_cursor=page.next_cursor))


@routes.get(r"/calls/{id:\d+}")
async def call(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        return reply(render.call(await get_call(s, path_id(request))))


@routes.get("/leads")
async def leads(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await list_leads(
            s,
            client_id=query_int(request, "client_id"),
            since=query_time(request, "since"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.LeadsPage(leads=[render.lead(x) for x in page.items], next_cursor=page.next_cursor))


@routes.get("/tasks")
async def tasks(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await list_tasks(
            s,
            agent_id=query_int(request, "agent_id"),
            client_id=query_int(request, "client_id"),
            open_only=query_bool(request, "open"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.TasksPage(tasks=[render.task(t) for t in page.items], next_cursor=page.next_cursor))


@routes.get("/agents")
async def agents(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        active = await request.config_dict[CRM].agents.active(s)
    return reply(schemas.AgentsOut(agents=[render.agent(AgentView.of(a)) for a in active]))
