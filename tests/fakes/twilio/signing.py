"""Posting as Twilio: every request signed with ``X-Twilio-Signature`` and carrying an idempotency token,
logged with its answer, and, when a test asks, held back and released in another order or sent twice."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from typing import Literal, Self
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

from tests.fakes.twilio.model import HOLDABLE, HttpAnswer, Params, PendingRequest, Purpose, SentRequest


class SignedPoster:
    """Sends requests to the gateway exactly as Twilio does; the simulator builds its calls on top of it."""

    def __init__(
        self,
        *,
        base_url: str,
        auth_token: str,
        http: aiohttp.ClientSession | None,
        fail_on_http_error: bool,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.fail_on_http_error = fail_on_http_error
        self.validator = RequestValidator(auth_token)
        self.log: list[SentRequest] = []
        self.held: list[PendingRequest] = []
        self._http = http
        self._own_http = http is None
        self._holding = False

    async def close(self) -> None:
        """Close the HTTP session the simulator opened itself."""
        if self._own_http and self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------- ordering

    def hold_callbacks(self) -> None:
        """From now on collect callbacks (and mid-call TwiML requests) in :attr:`held` instead of sending.

        While held, Twilio assumes a screening URL accepts the call, a ``<Dial action>`` after a
        conversation hangs up, and otherwise waits: the TwiML a held action answers is adopted when
        :meth:`release` sends it.
        """
        self._holding = True

    async def release(
        self,
        order: Literal["in_order", "reversed", "shuffled"] = "in_order",
        *,
        twice: bool = False,
        seed: int = 0,
    ) -> list[int]:
        """Send the held requests (each twice in a row if ``twice``), stop holding; return the statuses."""
        pending, self.held = self.held, []
        self._holding = False
        if order == "reversed":
            pending.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(pending)
        statuses: list[int] = []
        for request in pending:
            first: HttpAnswer | None = None
            for _ in range(2 if twice else 1):
                answer = await self._deliver(request)
                statuses.append(answer.status)
                first = first or answer
            if request.on_response is not None and first is not None:
                request.on_response(first)
        return statuses

    async def replay_last(self) -> int:
        """Send the most recent request again, byte for byte (a Twilio retry: same signature and token)."""
        if not self.log:
            raise AssertionError("nothing was sent yet")
        last = self.log[-1]
        answer = await self._http_request(last.method, last.url, last.params, last.signature, last.token)
        self._record(
            last.url,
            last.params,
            last.purpose,
            last.method,
            last.signature,
            last.token,
            answer,
            last.call_sid,
        )
        return answer.status

    # ---------------------------------------------------------------------------------- HTTP

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a request to exactly ``url`` with these form parameters."""
        return str(self.validator.compute_signature(url, dict(params)))

    async def post_signed(
        self, url: str, params: Mapping[str, str], *, signature: str | None = None, method: str = "POST"
    ) -> tuple[int, str]:
        """Send one request as Twilio would; ``signature`` overrides it (``""`` sends no signature header)."""
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        target, form = self._shape(method, target, dict(params))
        sig = self.sign(target, form) if signature is None else signature
        token = str(uuid.uuid4())
        answer = await self._http_request(method, target, form, sig or None, token)
        self._record(target, form, "manual", method, sig or None, token, answer, params.get("CallSid", ""))
        return answer.status, answer.text

    def sent(self, purpose: str | None = None, *, call_sid: str | None = None) -> list[SentRequest]:
        """The requests sent so far, optionally only those of one purpose and/or call."""
        return [
            entry
            for entry in self.log
            if (purpose is None or entry.purpose == purpose)
            and (call_sid is None or entry.call_sid == call_sid)
        ]

    async def _send(
        self,
        url: str,
        params: Params,
        *,
        purpose: Purpose,
        method: str = "POST",
        call_sid: str = "",
        on_response: Callable[[HttpAnswer], None] | None = None,
    ) -> HttpAnswer | None:
        request = PendingRequest(
            url=url,
            params=params,
            purpose=purpose,
            method=method.upper(),
            call_sid=call_sid,
            on_response=on_response,
        )
        if self._holding and purpose in HOLDABLE:
            self.held.append(request)
            return None
        answer = await self._deliver(request)
        if answer.status >= 400 and self.fail_on_http_error:
            raise AssertionError(
                f"the gateway answered {purpose} request to {url} with HTTP {answer.status}:"
                f" {answer.text[:500]}"
            )
        return answer

    def _shape(self, method: str, url: str, params: Params) -> tuple[str, Params]:
        """GET requests carry the parameters in the query string (and are signed without a body)."""
        if method.upper() != "GET" or not params:
            return url, params
        return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}", {}

    async def _deliver(self, request: PendingRequest) -> HttpAnswer:
        url, form = self._shape(request.method, request.url, request.params)
        signature = self.sign(url, form)
        answer = await self._http_request(request.method, url, form, signature, request.token)
        self._record(
            url, form, request.purpose, request.method, signature, request.token, answer, request.call_sid
        )
        return answer

    def _record(
        self,
        url: str,
        params: Params,
        purpose: str,
        method: str,
        signature: str | None,
        token: str,
        answer: HttpAnswer,
        call_sid: str,
    ) -> None:
        self.log.append(
            SentRequest(
                url=url,
                params=dict(params),
                purpose=purpose,
                method=method,
                signature=signature,
                token=token,
                status=answer.status,
                text=answer.text,
                call_sid=call_sid,
            )
        )

    async def _http_request(
        self, method: str, url: str, params: Params, signature: str | None, token: str
    ) -> HttpAnswer:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
            self._own_http = True
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": token,
            "X-Home-Region": "us1",
        }
        if signature:
            headers["X-Twilio-Signature"] = signature
        data = params if method.upper() == "POST" else None
        async with self._http.request(
            method.upper(), URL(url, encoded=True), data=data, headers=headers, allow_redirects=False
        ) as response:
            text = await response.text()
            return HttpAnswer(status=response.status, text=text, content_type=response.content_type, url=url)
