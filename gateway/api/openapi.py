"""The OpenAPI 3.1 document of `/api/v1`, made from the same pydantic models the handlers use."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.api import schemas

routes = web.RouteTableDef()

_MODELS: tuple[type[BaseModel], ...] = (
    schemas.Card,
    schemas.LookupOut,
    schemas.ClientsPage,
    schemas.ClientIn,
    schemas.ClientPatch,
    schemas.MergeIn,
    schemas.CallIn,
    schemas.CallOut,
    schemas.CallsPage,
    schemas.LeadsPage,
    schemas.TaskIn,
    schemas.TaskOut,
    schemas.TaskPatch,
    schemas.TasksPage,
    schemas.AgentsOut,
    schemas.ErrorOut,
)


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


_ID = _param("id", "path", {"type": "integer"}, "the record's id", required=True)
_PAGE = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "page size"),
    _param("cursor", "query", {"type": "string"}, "`next_cursor` of the previous page"),
]
_ERRORS = {
    "401": _json(schemas.ErrorOut, "no bearer token, or a revoked one"),
    "403": _json(schemas.ErrorOut, "a token we did not issue"),
    "422": _json(schemas.ErrorOut, "invalid fields; `fields` says which"),
}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: type[BaseModel] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_ERRORS, **(extra or {})}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return op


@cache
def document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "serialization") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    not_found = {"404": _json(schemas.ErrorOut, "no such record")}
    conflict = {"409": _json(schemas.ErrorOut, "a phone or e-mail belongs to another client")}
    paths = {
        "/lookup": {
            "get": _op(
                "Caller ID: the client with this number (any spelling); never creates one",
                {"200": _json(schemas.LookupOut, "the client")},
                params=[_param("phone", "query", {"type": "string"}, "the number, in any spelling", True)],
                extra=not_found,
            )
        },
        "/clients": {
            "get": _op(
                "Search clients by name, phone or e-mail; oldest first, paged",
                {"200": _json(schemas.ClientsPage, "a page of cards")},
                params=[
                    _param("q", "query", {"type": "string"}, "name, e-mail or phone (fragment)"),
                    _param("phone", "query", {"type": "string"}, "exactly this number, any spelling"),
                    *_PAGE,
                ],
            ),
            "post": _op(
                "Create a client",
                {"201": _json(schemas.Card, "the new card")},
                body=schemas.ClientIn,
                extra=conflict,
            ),
        },
        "/clients/{id}": {
            "get": _op(
                "A client's card", {"200": _json(schemas.Card, "the card")}, params=[_ID], extra=not_found
            ),
            "patch": _op(
                "Change a client",
                {"200": _json(schemas.Card, "the changed card")},
                params=[_ID],
                body=schemas.ClientPatch,
                extra={**not_found, **conflict},
            ),
        },
        "/clients/{id}/merge": {
            "post": _op(
                "Merge another client into this one (phones, e-mails, history, deals, tasks move)",
                {"200": _json(schemas.Card, "the survivor's card")},
                params=[_ID],
                body=schemas.MergeIn,
                extra=not_found,
            )
        },
        "/calls": {
            "get": _op(
                "The call log",
                {"200": _json(schemas.CallsPage, "a page of calls")},
                params=[
                    _param("client_id", "query", {"type": "integer"}, "one client's calls"),
                    _param(
                        "status",
                        "query",
                        {"enum": ["ringing", "in_progress", "completed", "missed", "busy", "failed"]},
                        "only calls in this state",
                    ),
                    _param(
                        "since", "query", {"type": "string", "format": "date-time"}, "started at or after"
                    ),
                    *_PAGE,
                ],
            ),
            "post": _op(
                "Click-to-call: ring the agent first, then connect the client (from CRM_TWILIO_CALLER_ID)",
                {"202": _json(schemas.CallOut, "the outbound call, ringing")},
                body=schemas.CallIn,
                extra={
                    "409": _json(schemas.ErrorOut, "click-to-call is off (no caller ID or Twilio account)")
                },
            ),
        },
        "/calls/{id}": {
            "get": _op("One call", {"200": _json(schemas.CallOut, "the call")}, params=[_ID], extra=not_found)
        },
        "/leads": {
            "get": _op(
                "Web-form leads",
                {"200": _json(schemas.LeadsPage, "a page of leads")},
                params=[
                    _param("client_id", "query", {"type": "integer"}, "one client's leads"),
                    _param(
                        "since", "query", {"type": "string", "format": "date-time"}, "received at or after"
                    ),
                    *_PAGE,
                ],
            )
        },
        "/tasks": {
            "get": _op(
                "Tasks",
                {"200": _json(schemas.TasksPage, "a page of tasks")},
                params=[
                    _param("agent_id", "query", {"type": "integer"}, "one agent's tasks"),
                    _param("client_id", "query", {"type": "integer"}, "one client's tasks"),
                    _param("open", "query", {"type": "boolean"}, "true: open only; false: done only"),
                    *_PAGE,
                ],
            ),
            "post": _op(
                "A task for an agent (no agent_id: the client's owner); due_at with its UTC offset",
                {"201": _json(schemas.TaskOut, "the task")},
                body=schemas.TaskIn,
            ),
        },
        "/tasks/{id}": {
            "patch": _op(
                'Close a task ({"done": true}) or move it ({"due_at": …}: reminded again then)',
                {"200": _json(schemas.TaskOut, "the task")},
                params=[_ID],
                body=schemas.TaskPatch,
                extra={**not_found, "409": _json(schemas.ErrorOut, "the task's agent has left")},
            )
        },
        "/agents": {
            "get": _op("Agents and their duty state", {"200": _json(schemas.AgentsOut, "the agents")})
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "CRM gateway API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@routes.get("/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(document())
