"""The REST API's Calls resource: creating a call (``POST Calls.json``), listing and fetching calls, moving
a call's resource on as the simulator drives it, and failures a test forces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.twilio.model import API_VERSION, Json, _split_events, new_sid, rfc2822
from tests.fakes.twilio.rest_core import RestCore, _ForcedFailure, _twilio_error

_FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _time_matches(value: str | None, wanted: str | None, op: str) -> bool:
    """Whether a resource's RFC 2822 ``value`` passes the Calls list's ``StartTime{op}``/``EndTime{op}``."""
    if wanted is None:
        return True
    if value is None:
        return False
    moment = parsedate_to_datetime(value)
    if "T" in wanted:  # a moment: twilio-python's `iso8601_datetime`
        bound = datetime.strptime(wanted, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return {"": moment == bound, "<": moment <= bound, ">": moment >= bound}[op]
    day = date.fromisoformat(wanted)
    on = moment.astimezone(UTC).date()
    return {"": on == day, "<": on <= day, ">": on >= day}[op]


_DEFAULT_FAILURES = {
    400: (21200, "Bad request to the Calls resource"),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


class CallsResource(RestCore):
    """``Calls.json`` and ``Calls/{sid}.json``, and what tests look at and change about them."""

    # ---------------------------------------------------------------------------------- control

    @property
    def created_calls(self) -> list[Json]:
        """The ``Calls.json`` requests that created a call."""
        return [call for call in self.calls if call.get("sid")]

    async def next_call(self, timeout: float = 5.0) -> Json:
        """The next created call not returned yet (waiting up to ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            created = self.created_calls
            if self._cursor < len(created):
                self._cursor += 1
                return created[self._cursor - 1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no call was created within {timeout}s; requests: {self.calls}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def fail_next(self, times: int, status: int, body: Json | None = None) -> None:
        """Answer the next ``times`` ``Calls.json`` creations with ``status`` and Twilio's error JSON."""
        if body is None:
            code, message = _DEFAULT_FAILURES.get(status, (20000 + status, "Error"))
            body = _twilio_error(status, code, message)
        self._failures.append(_ForcedFailure(status=status, body=body, remaining=times))

    def progress(self, sid: str, status: str, *, at: datetime, duration: str | None = None) -> None:
        """Move a created call's resource on: Twilio reports ``status`` at ``at`` (a call this server did
        not create, an inbound one, is not listed and is left alone)."""
        resource = self._resources.get(sid)
        if resource is None or status == "queued":
            return
        moment = rfc2822(at)
        resource["status"] = "queued" if status == "initiated" else status
        resource["date_updated"] = moment
        if resource["start_time"] is None:
            resource["start_time"] = moment  # "Empty if the call has not yet been dialed"
        if status in _FINAL_STATUSES:
            resource["end_time"] = moment
            resource["duration"] = duration or "0"

    def list_calls(self, query: Mapping[str, str]) -> list[Json]:
        """The created calls Twilio's Calls list returns for ``query``, newest first.

        ``To``, ``From``, ``ParentCallSid`` and ``Status`` match exactly. ``StartTime``/``EndTime`` take a
        date (``YYYY-MM-DD``, as Twilio documents) or a moment (``YYYY-MM-DDTHH:MM:SSZ``, what twilio-python
        sends for a ``datetime``); ``StartTime>`` is on or after it, ``StartTime<`` on or before it (for a
        date: that whole day), ``StartTime`` that day. A call that was not dialled yet has no start time,
        so no ``StartTime`` filter matches it (our reading of "empty if the call has not yet been dialed").
        """
        wanted = {key: query[key] for key in ("To", "From", "ParentCallSid", "Status") if key in query}
        field_of = {"To": "to", "From": "from", "ParentCallSid": "parent_call_sid", "Status": "status"}
        found = []
        for resource in reversed(list(self._resources.values())):
            if any(resource.get(field_of[key]) != value for key, value in wanted.items()):
                continue
            if all(
                _time_matches(resource.get(field), query.get(f"{name}{op}"), op)
                for name, field in (("StartTime", "start_time"), ("EndTime", "end_time"))
                for op in ("", "<", ">")
            ):
                found.append(resource)
        return found

    # ---------------------------------------------------------------------------------- serving

    async def _create_call(self, request: web.Request) -> web.Response:
        form = await request.post()
        params: Json = {}
        for key in form:
            values = [str(v) for v in form.getall(key)]
            params[key] = values if len(values) > 1 else values[0]
        for key in ("StatusCallbackEvent", "RecordingStatusCallbackEvent"):
            if key in params:
                params[key] = _split_events(params[key])
        record: Json = {**params, "sid": None, "http_status": 0}
        self.calls.append(record)
        try:
            status, body = self._answer_creation(params)
        finally:
            self._changed.set()
        record["http_status"] = status
        if status == 201:
            record["sid"] = body["sid"]
            self._resources[body["sid"]] = body
        self._changed.set()
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.json_response(body, status=status)

    def _answer_creation(self, params: Json) -> tuple[int, Json]:
        for failure in self._failures:
            if failure.remaining > 0:
                failure.remaining -= 1
                return failure.status, failure.body
        if not params.get("To"):
            return 400, _twilio_error(400, 21201, "No 'To' number is specified")
        if not params.get("From"):
            return 400, _twilio_error(400, 21213, "No 'From' number is specified")
        if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
            return 400, _twilio_error(400, 21205, "Url parameter is required")
        url = params.get("Url")
        if url and not str(url).startswith(("http://", "https://")):
            return 400, _twilio_error(400, 21205, f"Url is not a valid URL: {url}")
        sid = new_sid("CA")
        now = rfc2822(datetime.now(UTC))
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}"
        return 201, {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": params["From"],
            "from_formatted": params["From"],
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
                "events": f"{base}/Events.json",
            },
            "to": params["To"],
            "to_formatted": params["To"],
            "trunk_sid": None,
            "uri": f"{base}.json",
        }

    def _list_calls(self, request: web.Request) -> web.Response:
        """A page of the Calls list, in Twilio's shape (``calls`` plus the paging URIs)."""
        query = dict(request.query)
        self.listings.append(query)
        try:
            size = int(query.get("PageSize", "50"))
            page = int(query.get("Page", "0"))
            if not 1 <= size <= 1000 or page < 0:
                raise ValueError(query)
            found = self.list_calls(query)
        except ValueError:
            return web.json_response(
                _twilio_error(400, 20001, "Invalid paging or date parameter"), status=400
            )
        start = page * size
        chunk = found[start : start + size]
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"
        kept = {key: value for key, value in query.items() if key not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            return f"{path}?{urlencode({**kept, 'PageSize': size, 'Page': number})}"

        more = start + size < len(found)
        return web.json_response(
            {
                "calls": chunk,
                "end": start + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": f"{uri(page + 1)}&PageToken=PA{page + 1}" if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "start": start,
                "uri": uri(page),
            }
        )
