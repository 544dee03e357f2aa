"""Small helpers every handler uses: JSON in, JSON out, query parameters, one error shape."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1024 * 1024  # CONTRACT.md: bodies over 1 MiB get 413


def error_response(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """`{"error": code, "detail": …}` (or `fields`), the one error shape of the HTTP API."""
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    if fields is not None:
        body["fields"] = fields
    return web.json_response(body, status=status, headers=headers)


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(by_alias=True).encode(),
        status=status,
        content_type="application/json",
    )


class BadRequest(Exception):
    """The request itself is unusable (not JSON, wrong content type): a 400 or 415."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


async def read_model(request: web.Request, model: type[M]) -> tuple[M, set[str]]:
    """The JSON body as `model`, and the names of the fields the caller actually sent."""
    if request.content_type != "application/json":
        raise BadRequest(415, "unsupported_media_type", "send the body as application/json")
    data = json_object(await request.read())
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None
    return parsed, set(parsed.model_fields_set)


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body, or `BadRequest` (400). NaN, Infinity and numbers beyond a double are
    refused here: no database column takes them."""
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "bad_json", "the body must be a JSON object")
    return data


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    """JSON numbers only: `1e400` would be infinity, which no database column takes."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


def field_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "body"
        out.setdefault(path, str(err["msg"]).removeprefix("Value error, "))
    return out


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput({name: f"expected a whole number, got {raw!r}"}) from None


def query_limit(request: web.Request, default: int = 50) -> int:
    value = query_int(request, "limit")
    return default if value is None else value


def query_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise InvalidInput({name: f"expected true or false, got {raw!r}"})


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        # An unencoded "+01:00" arrives as " 01:00": put the plus back.
        value = datetime.fromisoformat(re.sub(r" (\d\d:?\d\d)$", r"+\1", raw.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput({name: f"expected an ISO 8601 time, got {raw!r}"}) from None
    if value.tzinfo is None:
        raise InvalidInput({name: "give the time with its UTC offset, e.g. 2026-03-02T15:30:00+01:00"})
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    return int(request.match_info[name])
