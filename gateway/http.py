"""Small helpers every handler uses: JSON in, JSON out, query parameters, one error shape."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from crm.domain.errors import InvalidInput, NotFound
from crm.domain.paging import MAX_ID, parse_id
from crm.domain.text import storable

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1024 * 1024  # CONTRACT.md: bodies over 1 MiB get 413
# How deep a JSON body may nest: far more than any field needs (custom fields, a lead's extra
# fields), far less than the parser's recursion limit, whose RecursionError would be a 500.
MAX_DEPTH = 32
# The times a caller may give (due dates, `since`): wide enough for any real date, and narrow
# enough that converting to UTC or to an agent's zone, or adding a reminder's delay, cannot leave
# the years 1 to 9999 that Python's datetime holds.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
_ECHO = 40  # characters of a bad value repeated in an error


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
    refused here (no database column takes them), and so is nesting deeper than `MAX_DEPTH`;
    a whole number beyond 64 bits is a field error (422); text is made `storable` (JSON may carry
    NUL characters and unpaired surrogates)."""
    try:
        data = json.loads(raw or b"null", parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError):  # bad UTF-8, bad syntax, an integer of 4300+ digits
        raise BadRequest(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "bad_json", "the body must be a JSON object")
    cleaned: dict[str, Any] = _storable(data, ())
    return cleaned


def _storable(value: Any, path: tuple[str | int, ...]) -> Any:
    """`value` with its text made storable, checked for depth and 64-bit whole numbers."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_ID - 1 <= value <= MAX_ID:
        where = ".".join(str(p) for p in path) or "body"
        raise InvalidInput({where: f"a whole number beyond 64 bits (at most {MAX_ID})"})
    if isinstance(value, dict | list) and len(path) >= MAX_DEPTH:
        raise _too_deep()
    if isinstance(value, dict):
        keys = [storable(k) for k in value]
        return {k: _storable(v, (*path, k)) for k, v in zip(keys, value.values(), strict=True)}
    if isinstance(value, list):
        return [_storable(v, (*path, i)) for i, v in enumerate(value)]
    return value


def _too_deep() -> BadRequest:
    return BadRequest(400, "bad_json", f"the body nests arrays and objects more than {MAX_DEPTH} deep")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    """JSON numbers only: `1e400` would be infinity, which no database column takes."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The form body (url-encoded or multipart), or `BadRequest` (400) when it cannot be read."""
    try:
        return await request.post()
    except web.HTTPException:
        raise  # 413: the body is too large
    except Exception as exc:  # aiohttp says so with ValueError, LookupError (a bogus charset), …
        raise BadRequest(400, "bad_form", f"the form body cannot be read: {_echo(str(exc))}") from None


def field_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "body"
        out.setdefault(path, str(err["msg"]).removeprefix("Value error, "))
    return out


def _echo(raw: str) -> str:
    """A caller's value, short enough to repeat in an error."""
    return raw if len(raw) <= _ECHO else raw[:_ECHO] + "…"


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """A whole number in the query (an id, a page size), within what a 64-bit column holds."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:  # not a number, or one of 4300+ digits
        value = None
    if value is None or not -MAX_ID - 1 <= value <= MAX_ID:
        raise InvalidInput({name: f"expected a whole number within 64 bits, got {_echo(raw)!r}"})
    return value


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
    raise InvalidInput({name: f"expected true or false, got {_echo(raw)!r}"})


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        # An unencoded "+01:00" arrives as " 01:00": put the plus back.
        value = datetime.fromisoformat(re.sub(r" (\d\d:?\d\d)$", r"+\1", raw.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput({name: f"expected an ISO 8601 time, got {_echo(raw)!r}"}) from None
    if value.tzinfo is None:
        raise InvalidInput({name: "give the time with its UTC offset, e.g. 2026-03-02T15:30:00+01:00"})
    try:
        return plausible_time(value)
    except ValueError as exc:
        raise InvalidInput({name: str(exc)}) from None


def plausible_time(value: datetime) -> datetime:
    """An aware time a caller gave, or `ValueError` when it lies outside `EARLIEST` to `LATEST`
    (year 1 or 9999 with an offset cannot even be converted to UTC)."""
    if not EARLIEST <= value < LATEST:  # compared as instants: no conversion, no overflow
        raise ValueError(f"must lie between the years {EARLIEST.year} and {LATEST.year - 1}")
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """The id in the URL; a number no record can have (26 digits, say) is simply not found."""
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"nothing has the id {_echo(raw)}")
    return value
