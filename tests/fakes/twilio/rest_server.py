"""The REST stand-in's lifecycle and front door: start and stop it on loopback, check Twilio's basic auth
and route each request to the Calls resource or the recordings."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from tests.fakes.twilio.model import API_VERSION
from tests.fakes.twilio.recordings import RecordingMedia
from tests.fakes.twilio.rest_calls import CallsResource
from tests.fakes.twilio.rest_core import _twilio_error


class TwilioRestServer(CallsResource, RecordingMedia):
    """A local api.twilio.com: ``Calls.json`` creation and recording media, with Twilio's auth and errors.

    Give :attr:`url` to ``CRM_TWILIO_API_URL``. Every ``Calls.json`` creation that passed authentication is
    kept in :attr:`calls` as its form parameters (``StatusCallbackEvent`` as a list) plus ``sid`` (``None``
    when it was refused) and ``http_status``; every listing in :attr:`listings` as its query parameters.
    """

    # ---------------------------------------------------------------------------------- serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.unauthorized.append(str(request.url))
            return web.json_response(
                _twilio_error(401, 20003, "Authenticate"),
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        prefix = f"/{API_VERSION}/Accounts/{self.account_sid}/"
        path = request.path
        if path.startswith(prefix):
            rest = path.removeprefix(prefix)
            if rest == "Calls.json" and request.method == "POST":
                return await self._create_call(request)
            if rest == "Calls.json" and request.method == "GET":
                return self._list_calls(request)
            if rest.startswith("Calls/") and rest.endswith(".json") and request.method == "GET":
                resource = self._resources.get(rest.removeprefix("Calls/").removesuffix(".json"))
                if resource is not None:
                    return web.json_response(resource)
            if rest.startswith("Recordings/") and request.method in ("GET", "HEAD"):
                return self._recording(request, rest.removeprefix("Recordings/"))
        if path.startswith(f"/{API_VERSION}/Accounts/") and not path.startswith(prefix):
            return web.json_response(_twilio_error(401, 20003, "Authenticate"), status=401)
        return web.json_response(
            _twilio_error(404, 20404, f"The requested resource {path} was not found"), status=404
        )

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(login, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )


async def running_rest_server(**kwargs: Any) -> AsyncIterator[TwilioRestServer]:
    """Fixture body: ``async for server in running_rest_server(): yield server``."""
    server = TwilioRestServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
