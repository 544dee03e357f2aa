"""Web-form leads: `POST /leads` (form, multipart or JSON), its CORS preflight, and the form itself.

Who gets JSON back: a JSON request, or one whose `Accept` asks for JSON and not HTML (a page's
`fetch`); a browser's plain form post is redirected (303) to `_next` when given, else gets a small
thank-you page. Field errors are always the API's JSON (422).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL

from crm.domain.errors import InvalidInput
from crm.services.intake import CheckedLead, LeadDraft
from gateway import lead_pages
from gateway.cors import CORS
from gateway.http import BadRequest, error_response, json_object, read_form
from gateway.keys import CRM, LEAD_LIMIT, SETTINGS, STORE

routes = web.RouteTableDef()

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TEXT_FIELDS = ("name", "phone", "email", "message", "source")
HONEYPOT = "_gotcha"
NEXT = "_next"
SINGLE = frozenset({*TEXT_FIELDS, HONEYPOT, NEXT})  # a repeated name counts once (the first)


@dataclass(slots=True)
class Submission:
    """A `POST /leads` as the gateway reads it: the lead's fields and the form's controls."""

    draft: LeadDraft
    wants_json: bool
    trapped: bool = False  # the honeypot was filled in
    next_url: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # problems only HTTP can have


@routes.post("/leads")
async def post_lead(request: web.Request) -> web.StreamResponse:
    limited = _rate_limited(request)
    if limited is not None:
        return limited
    sub = await _read(request)
    if sub.next_url is not None and not sub.wants_json:
        problem = next_url_problem(request, sub.next_url)
        if problem:
            sub.errors[NEXT] = problem
    if sub.trapped:
        # A bot: answer as if all went well, store nothing.
        return _answer(sub, lead_id=_made_up(), client_id=_made_up(), created=True, agent_id=None)
    intake = request.app[CRM].leads
    lead = _checked(sub, intake.check)
    # Leads that arrive together share a commit (each is answered once it is stored).
    receipt = await request.app[STORE].write_together(lambda s: intake.submit(s, lead))
    return _answer(
        sub,
        lead_id=receipt.lead_id,
        client_id=receipt.client_id,
        created=receipt.client_created,
        agent_id=receipt.assigned_agent_id,
    )


@routes.options("/leads")
async def preflight(request: web.Request) -> web.Response:
    return request.app[CORS].preflight(request)


@routes.get("/forms/lead")
async def form(request: web.Request) -> web.Response:
    """The ready-to-embed form; `?source=` and `?_next=` are passed on as hidden fields."""
    next_url = request.query.get(NEXT) or None
    if next_url is not None:
        problem = next_url_problem(request, next_url)
        if problem:
            raise InvalidInput({NEXT: problem})
    action = f"{request.app[SETTINGS].public_url}/leads"
    source = request.query.get("source") or None
    return lead_pages.html(lead_pages.form_page(action, source=source, next_url=next_url))


def _rate_limited(request: web.Request) -> web.Response | None:
    limiter = request.app[LEAD_LIMIT]
    wait = limiter.hit(request.remote or "unknown")
    if wait is None:
        return None
    return error_response(
        429,
        "too_many_requests",
        f"at most {limiter.limit.text} leads from one address; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def _checked(sub: Submission, check: Callable[[LeadDraft], CheckedLead]) -> CheckedLead:
    """The domain's checks and the HTTP ones, all problems reported at once."""
    errors = dict(sub.errors)
    lead = None
    try:
        lead = check(sub.draft)
    except InvalidInput as exc:
        errors = {**exc.fields, **errors}
    if errors or lead is None:
        raise InvalidInput(errors)
    return lead


def _answer(
    sub: Submission, *, lead_id: int, client_id: int, created: bool, agent_id: int | None
) -> web.Response:
    if sub.wants_json:
        body = {
            "lead_id": lead_id,
            "client_id": client_id,
            "client_created": created,
            "assigned_agent_id": agent_id,
        }
        return web.json_response(body, status=201)
    if sub.next_url is not None and NEXT not in sub.errors:
        return web.Response(status=303, headers={"Location": sub.next_url})
    return lead_pages.html(lead_pages.thanks_page(), status=201)


def _made_up() -> int:
    """An id that looks real to a bot and points at nothing it can use."""
    return 1000 + secrets.randbelow(90_000)


# -- reading the request -----------------------------------------------------------------------


async def _read(request: web.Request) -> Submission:
    content_type = request.content_type
    if content_type == "application/json":
        fields: dict[str, Any] = await _json_fields(request)
        wants_json = True
    elif content_type in FORM_TYPES:
        fields = await _form_fields(request)
        accept = request.headers.get("Accept", "")
        wants_json = "application/json" in accept and "text/html" not in accept
    else:
        raise BadRequest(
            415,
            "unsupported_media_type",
            "send the lead as application/x-www-form-urlencoded, multipart/form-data or application/json",
        )
    sub = Submission(LeadDraft(), wants_json=wants_json)
    trap = fields.pop(HONEYPOT, None)
    sub.trapped = trap not in (None, "", False, 0, [], {})
    next_url = _text(fields.pop(NEXT, None), NEXT, sub.errors)
    sub.next_url = next_url.strip() if next_url and next_url.strip() else None
    draft = sub.draft
    draft.name = _text(fields.pop("name", None), "name", sub.errors)
    draft.phone = _text(fields.pop("phone", None), "phone", sub.errors)
    draft.email = _text(fields.pop("email", None), "email", sub.errors)
    draft.message = _text(fields.pop("message", None), "message", sub.errors)
    draft.source = _text(fields.pop("source", None), "source", sub.errors)
    for key, value in fields.items():
        if key.lower().startswith("utm_"):
            text = _text(value, key, sub.errors)
            if text is not None:
                draft.utm[key.lower()] = text
        else:
            draft.extra[key] = value
    return sub


def _text(value: Any, name: str, errors: dict[str, str]) -> str | None:
    """A field that must be text (a JSON number is taken as its digits: phones come as numbers)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    errors[name] = "must be text"
    return None


async def _json_fields(request: web.Request) -> dict[str, Any]:
    return json_object(await request.read())


async def _form_fields(request: web.Request) -> dict[str, Any]:
    """Form fields by name: one value as text, a repeated name (checkboxes) as a list."""
    form = await read_form(request)
    fields: dict[str, Any] = {}
    files: list[str] = []
    for name in dict.fromkeys(form.keys()):
        values = form.getall(name)
        if not all(isinstance(v, str) for v in values):
            files.append(name)
            continue
        fields[name] = values[0] if len(values) == 1 or name in SINGLE else values
    if files:
        raise InvalidInput(dict.fromkeys(files, "files are not accepted here"))
    return fields


def next_url_problem(request: web.Request, raw: str) -> str | None:
    """Why a browser may not be sent to `raw` after posting, or None when it may: an http(s) URL
    on the gateway's own host or on an origin of CRM_FORM_ALLOWED_ORIGINS (not an open redirect)."""
    try:
        url = URL(raw)
    except ValueError:
        return "not a URL"
    if url.scheme not in ("http", "https") or not url.host:
        return "must be an http:// or https:// URL"
    cors = request.app[CORS]
    if cors.any or str(url.origin()).lower() in cors.origins:
        return None
    own_hosts = {_host(f"http://{request.host}"), _host(request.app[SETTINGS].public_url)}
    if url.host.lower() in own_hosts:
        return None
    return f"{url.origin()} is not this site and not in CRM_FORM_ALLOWED_ORIGINS"


def _host(url: str) -> str | None:
    try:
        host = URL(url).host
    except ValueError:
        return None
    return host.lower() if host else None
