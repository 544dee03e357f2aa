"""`/api/v1/calls`, `/leads`, `/tasks`, `/agents`: the logs and lists managers read."""

from __future__ import annotations

from aiohttp import web

from crm.domain.errors import InvalidInput
from crm.services.agents import AgentView
from gateway.api import render, schemas
from gateway.http import (
    error_response,
    path_id,
    query_bool,
    query_int,
    query_limit,
    query_time,
    read_model,
    reply,
)
from gateway.keys import CRM, REMINDERS, SETTINGS, STORE
from telephony.twilio.parse import PROVIDER

routes = web.RouteTableDef()


@routes.get("/calls")
async def call_log(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await request.config_dict[CRM].call_log.search(
            s,
            client_id=query_int(request, "client_id"),
            status=request.query.get("status") or None,
            since=query_time(request, "since"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.CallsPage(calls=[render.call(c) for c in page.items], next_cursor=page.next_cursor))


@routes.post("/calls")
async def click_to_call(request: web.Request) -> web.Response:
    """Ring the agent, then the client, from the company's number; 202 with the CALL."""
    body, _ = await read_model(request, schemas.CallIn)
    settings = request.config_dict[SETTINGS]
    if not (settings.twilio_caller_id and settings.twilio_account_sid and settings.twilio_auth_token):
        return error_response(
            409,
            "click_to_call_off",
            "click-to-call needs CRM_TWILIO_CALLER_ID, CRM_TWILIO_ACCOUNT_SID and CRM_TWILIO_AUTH_TOKEN",
        )
    async with request.config_dict[STORE].session() as s:
        call = await request.config_dict[CRM].calls.place_outbound(
            s,
            client_id=body.client_id,
            agent_id=body.agent_id,
            provider=PROVIDER,
            caller_id=settings.twilio_caller_id,
        )
        rendered = render.call(call)
    return reply(rendered, status=202)


@routes.get(r"/calls/{id:\d+}")
async def one_call(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        return reply(render.call(await request.config_dict[CRM].call_log.get(s, path_id(request))))


@routes.get("/leads")
async def lead_list(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await request.config_dict[CRM].leads.search(
            s,
            client_id=query_int(request, "client_id"),
            since=query_time(request, "since"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.LeadsPage(leads=[render.lead(x) for x in page.items], next_cursor=page.next_cursor))


@routes.get("/tasks")
async def task_list(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        page = await request.config_dict[CRM].tasks.search(
            s,
            agent_id=query_int(request, "agent_id"),
            client_id=query_int(request, "client_id"),
            open_only=query_bool(request, "open"),
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
    return reply(schemas.TasksPage(tasks=[render.task(t) for t in page.items], next_cursor=page.next_cursor))


@routes.post("/tasks")
async def create_task(request: web.Request) -> web.Response:
    """A task for an agent (the client's owner by default); reminded once when it comes due."""
    body, _ = await read_model(request, schemas.TaskIn)
    async with request.config_dict[STORE].session() as s:
        task = await request.config_dict[CRM].tasks.create(
            s, client_id=body.client_id, title=body.title, due_at=body.due_at, agent_id=body.agent_id
        )
        rendered = render.task(task)
    request.config_dict[REMINDERS].wake()
    return reply(rendered, status=201)


@routes.patch(r"/tasks/{id:\d+}")
async def patch_task(request: web.Request) -> web.Response:
    """`{"done": true}` closes a task; `{"due_at": …}` moves it (and it is reminded again then)."""
    body, given = await read_model(request, schemas.TaskPatch)
    if not given:
        raise InvalidInput({"body": "give done or due_at"})
    async with request.config_dict[STORE].session() as s:
        task = await request.config_dict[CRM].tasks.update(
            s, path_id(request), done=body.done, due_at=body.due_at
        )
        rendered = render.task(task)
    request.config_dict[REMINDERS].wake()
    return reply(rendered)


@routes.get("/agents")
async def agent_list(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        active = await request.config_dict[CRM].agents.active(s)
    return reply(schemas.AgentsOut(agents=[render.agent(AgentView.of(a)) for a in active]))
