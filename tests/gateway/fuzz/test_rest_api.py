"""Whatever a script sends to any route of the REST API, it gets no 5xx, and every 4xx says what
was wrong in the JSON error shape. The routes come from the API's own OpenAPI document, so a new
route is attacked as soon as it is documented."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.gateway.fuzz import strategies as gen
from tests.gateway.fuzz.world import World, fuzz

OTHER_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]
CONTENT_TYPES = [
    "application/json; charset=bogus",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zzz",
    None,
]
ODD_SEGMENTS = ["abc", "0", "-1", "1.5", "0x10", "%00", "%ff", "%C2%B2", "%D9%A1%D9%A2", "9" * 5000]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    query: dict[str, dict[str, Any]]  # name → JSON Schema
    body: dict[str, Any] | None  # JSON Schema of the body, when it takes one


@dataclass(frozen=True)
class Api:
    prefix: str
    operations: list[Operation]
    components: dict[str, Any]

    @property
    def weighted(self) -> list[Operation]:
        """Operations that take a body three times over: they have the most to go wrong."""
        return [op for op in self.operations for _ in range(3 if op.body else 1)]


@pytest.fixture
async def api(world: World) -> Api:
    """The operations the gateway documents at GET /api/v1/openapi.json, read from it."""
    answer = await world.send("GET", "/api/v1/openapi.json")
    assert answer.status == 200, str(answer)
    doc = json.loads(answer.body)
    operations = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            query = {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"}
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            operations.append(Operation(method.upper(), path, query, body))
    assert len(operations) >= 10, "the OpenAPI document lost its routes"
    return Api(doc["servers"][0]["url"], operations, doc["components"]["schemas"])


def _query_values(schema: dict[str, Any], *, wild: bool) -> st.SearchStrategy[str]:
    odd = gen.texts(longest=300)
    if "enum" in schema:
        right: st.SearchStrategy[str] = st.sampled_from([str(v) for v in schema["enum"]])
    elif schema.get("type") == "integer":
        right = st.one_of(gen.ints().map(str), st.sampled_from(["1e309", "-1", "0", "1_000", " 7 "]))
    elif schema.get("type") == "boolean":
        right = st.sampled_from(["true", "false", "1", "0", "yes", "maybe"])
    elif schema.get("format") == "date-time":
        right = gen.times()
    else:
        right = st.one_of(st.text(max_size=20), st.just("Y3" + "9" * 30))  # the last looks like a cursor
    return gen.mostly(right, odd) if wild else st.one_of(right, odd)


def _hints(world: World) -> dict[str, st.SearchStrategy[Any]]:
    """Realistic values for the body fields that decide how far a request gets."""
    ids = st.sampled_from(world.known_ids)
    return {
        "client_id": ids,
        "agent_id": ids,
        "owner_id": ids,
        "other_id": ids,
        "name": gen.names(),
        "phones": st.lists(gen.phones(), max_size=3),
        "emails": st.lists(gen.emails(), max_size=3),
        "title": gen.names(),
        "due_at": gen.plausible_times(),
    }


@fuzz(examples=700)
@given(data=st.data())
async def test_no_request_to_the_rest_api_gets_a_5xx(world: World, api: Api, data: st.DataObject) -> None:
    """Half the requests are well-formed (right method, token, content type and field types, any
    values); the other half are wild in every part."""
    wild = data.draw(st.booleans(), label="wild")
    op = data.draw(st.sampled_from(api.weighted), label="operation")
    method = op.method
    if wild:
        method = data.draw(gen.mostly(st.just(op.method), st.sampled_from(OTHER_METHODS)), label="method")
    path = op.path
    if "{id}" in path:
        ids = st.one_of(st.sampled_from([str(i) for i in world.known_ids]), gen.ints().map(str))
        odd = st.one_of(st.sampled_from(ODD_SEGMENTS), gen.texts(longest=300).map(gen.query_value))
        path = path.replace("{id}", data.draw(gen.mostly(ids, odd) if wild else ids, label="id"))
    names = list(op.query) + (["unexpected"] if wild else [])
    pairs = data.draw(
        st.lists(
            st.sampled_from(names).flatmap(
                lambda n: st.tuples(st.just(n), _query_values(op.query.get(n, {}), wild=wild))
            ),
            max_size=4,
        )
        if names
        else st.just([]),
        label="query",
    )
    query = "&".join(f"{gen.query_value(k)}={gen.query_value(v)}" for k, v in pairs)
    target = api.prefix + path + (f"?{query}" if query else "")
    assume(len(target) < 8000)  # longer request lines are refused by aiohttp's HTTP parser itself
    token = world.token
    auth: str | None = f"Bearer {token}"
    if wild:
        odd_auth = [None, "Bearer", "Bearer nope", "Basic YTpi", f"bearer   {token}  ", "Bearer é" + token]
        auth = data.draw(gen.mostly(st.just(auth), st.sampled_from(odd_auth)), label="authorization")
    headers = {"Authorization": auth} if auth is not None else {}
    body = None
    if op.body is not None or (wild and method in ("POST", "PATCH", "PUT")):
        shaped = gen.from_schema(op.body or {}, api.components, _hints(world), wild=wild)
        if wild:
            body = data.draw(gen.json_bodies(shaped), label="body")
            content_type = data.draw(
                gen.mostly(st.just("application/json"), st.sampled_from(CONTENT_TYPES)), label="content type"
            )
        else:
            body = gen.encode_json(data.draw(shaped, label="body"), ascii_only=True)
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
    answer = await world.send(method, target, headers=headers, body=body)
    answer.obeys_the_contract()
