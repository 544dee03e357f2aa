"""Middlewares: one JSON error shape for everything, the body limit, request metrics.

Nothing a caller sends can produce a 500 with a traceback: unexpected errors are logged here with
the traceback and answered with a short JSON error. (That is the last resort: the property-based
tests in tests/gateway/fuzz/ hold the gateway to no 5xx at all.)
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from crm.domain.errors import Conflict, CrmError, Forbidden, InvalidInput, NotFound
from gateway.http import MAX_BODY, BadRequest, error_response
from gateway.keys import METRICS
from gateway.metrics import route_name

log = logging.getLogger("gateway.http")

_STATUS = {NotFound: 404, Conflict: 409, Forbidden: 403, InvalidInput: 422}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error_response(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    unreadable = _unreadable(request)
    if unreadable is not None:
        return error_response(400, "bad_request", unreadable)
    try:
        return await handler(request)
    except InvalidInput as exc:
        return error_response(422, exc.code, fields=exc.fields)
    except CrmError as exc:
        return error_response(_STATUS.get(type(exc), 400), exc.code, exc.detail)
    except BadRequest as exc:
        return error_response(exc.status, exc.code, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "something went wrong on our side; it has been logged")


def _unreadable(request: web.Request) -> str | None:
    """What no handler can use: a header holding bytes that are not UTF-8 (aiohttp keeps them as
    surrogate escapes, which neither comparing with a secret nor encoding survives), or a NUL in
    the query (PostgreSQL stores and compares no NUL)."""
    for name, value in request.headers.items():
        if not value.isascii() and not _is_text(value):
            return f"the {name} header is not UTF-8 text"
    if any("\x00" in key or "\x00" in value for key, value in request.query.items()):
        return "the query string holds a NUL character (%00)"
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 413:
        return error_response(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    if exc.status == 404:
        return error_response(404, "not_found", "no such URL")
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return error_response(405, "method_not_allowed", f"use {allowed}", headers={"Allow": allowed})
    if exc.content_type == "application/json":
        return web.Response(
            status=exc.status, body=exc.body, content_type="application/json", headers=exc.headers
        )
    code = exc.reason.lower().replace(" ", "_")
    return error_response(exc.status, code, exc.text or exc.reason, headers=dict(exc.headers))


@web.middleware
async def metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        m = request.app[METRICS]
        route = route_name(request)
        m.requests.labels(request.method, route, str(status)).inc()
        m.latency.labels(request.method, route).observe(time.perf_counter() - started)
