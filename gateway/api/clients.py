"""`/api/v1/clients` and the caller-ID look-up."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.errors import InvalidInput, InvalidPhone, NotFound
from crm.domain.phones import parse_phone
from crm.services.clients import ClientDraft
from gateway.api import render, schemas
from gateway.http import path_id, query_limit, read_model, reply
from gateway.keys import CRM, STORE

routes = web.RouteTableDef()


async def _card(request: web.Request, s: AsyncSession, client_id: int) -> schemas.Card:
    card = await request.config_dict[CRM].cards.build(s, client_id)
    if card is None:
        raise NotFound(f"no client with id {client_id}")
    return render.card(card)


@routes.get("/lookup")
async def lookup(request: web.Request) -> web.Response:
    """Caller ID for any PBX: who is this number? Never creates a client."""
    crm = request.config_dict[CRM]
    raw = request.query.get("phone", "").strip()
    if not raw:
        raise InvalidInput({"phone": "required, e.g. ?phone=%2B14155550100"})
    try:
        parse_phone(raw, crm.region)
    except InvalidPhone as exc:
        raise InvalidInput({"phone": str(exc)}) from None
    async with request.config_dict[STORE].reading() as s:
        client_id = await crm.clients.id_by_phone(s, raw)
        if client_id is None:
            raise NotFound(f"no client has the number {raw}")
        return reply(schemas.LookupOut(client=await _card(request, s, client_id)))


@routes.get("/clients")
async def list_clients(request: web.Request) -> web.Response:
    crm = request.config_dict[CRM]
    async with request.config_dict[STORE].reading() as s:
        page = await crm.clients.search(
            s,
            q=request.query.get("q"),
            phone=request.query.get("phone") or None,
            limit=query_limit(request),
            cursor=request.query.get("cursor") or None,
        )
        cards = await crm.cards.build_many(s, page.items)
    return reply(schemas.ClientsPage(clients=[render.card(c) for c in cards], next_cursor=page.next_cursor))


@routes.get(r"/clients/{id:\d+}")
async def get_client(request: web.Request) -> web.Response:
    async with request.config_dict[STORE].reading() as s:
        return reply(await _card(request, s, path_id(request)))


@routes.post("/clients")
async def create_client(request: web.Request) -> web.Response:
    body, _ = await read_model(request, schemas.ClientIn)
    draft = ClientDraft(**body.model_dump())
    async with request.config_dict[STORE].session() as s:
        client_id = await request.config_dict[CRM].clients.create(s, draft)
        card = await _card(request, s, client_id)
    return reply(card, status=201)


@routes.patch(r"/clients/{id:\d+}")
async def patch_client(request: web.Request) -> web.Response:
    body, given = await read_model(request, schemas.ClientPatch)
    values = {k: v for k, v in body.model_dump().items() if k in given and v is not None}
    draft = ClientDraft(**values, clear_owner="owner_id" in given and body.owner_id is None)
    client_id = path_id(request)
    async with request.config_dict[STORE].session() as s:
        await request.config_dict[CRM].clients.update(s, client_id, draft)
        card = await _card(request, s, client_id)
    return reply(card)


@routes.post(r"/clients/{id:\d+}/merge")
async def merge(request: web.Request) -> web.Response:
    """Fold `other_id` into this client; the answer is the survivor's card."""
    body, _ = await read_model(request, schemas.MergeIn)
    client_id = path_id(request)
    async with request.config_dict[STORE].session() as s:
        await request.config_dict[CRM].merger.merge(s, client_id, body.other_id)
        card = await _card(request, s, client_id)
    return reply(card)
