"""Twilio's REST API, through the twilio library's async client: place calls, find the calls
placed, fetch recordings."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

RECORDING_TIMEOUT = aiohttp.ClientTimeout(total=30)
# How long a REST request may take before we stop waiting for it (and treat Twilio as unreachable).
REQUEST_TIMEOUT = 15.0


class TwilioRejected(Exception):
    """Twilio refused the request for good (a 4xx other than 429): do not retry."""


class TwilioUnavailable(Exception):
    """Twilio could not be reached or asked us to wait: retry later."""


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """A call in Twilio's Calls list: its CallSid and when Twilio created it (whole seconds)."""

    sid: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recording:
    data: bytes
    content_type: str
    filename: str


class TwilioRest:
    def __init__(self, account_sid: str, auth_token: str, api_url: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_url = api_url.rstrip("/")
        self._http = AsyncTwilioHttpClient()
        self.client = Client(account_sid, auth_token, http_client=self._http)
        self.client.api.base_url = self.api_url

    async def place_call(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        """Ask Twilio to ring `to` and fetch `url` for TwiML when answered; returns the CallSid."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                call = await self.client.api.v2010.accounts(self.account_sid).calls.create_async(
                    to=to,
                    from_=from_,
                    url=url,
                    method="POST",
                    status_callback=status_callback,
                    status_callback_event=["initiated", "ringing", "answered", "completed"],
                    status_callback_method="POST",
                )
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TwilioUnavailable(f"Twilio answered {exc.status}: {exc.msg}") from exc
            raise TwilioRejected(
                f"Twilio refused the call ({exc.status}, code {exc.code}): {exc.msg}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TwilioUnavailable(f"cannot reach Twilio: {type(exc).__name__}: {exc}") from exc
        return str(call.sid)

    async def recent_calls(self, *, to: str, from_: str, limit: int = 50) -> list[PlacedCall]:
        """The latest calls from `from_` to `to` (one page, newest first), from Twilio's Calls list.

        Filtered by `To` and `From` only: `StartTime` is empty until Twilio dials a call (one
        queued behind the account's calls-per-second limit would be missed) and is a date, not
        a moment; the caller compares `created_at` itself."""
        calls = self.client.api.v2010.accounts(self.account_sid).calls
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                found = await calls.list_async(to=to, from_=from_, limit=limit, page_size=limit)
        except TwilioException as exc:  # the list raises the base class for an error answer
            raise TwilioUnavailable(f"cannot list Twilio's calls: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TwilioUnavailable(f"cannot reach Twilio: {type(exc).__name__}: {exc}") from exc
        return [PlacedCall(str(c.sid), c.date_created) for c in found if c.sid and c.date_created]

    async def fetch_recording(self, url: str) -> Recording:
        """The recording's audio (MP3), with the account's credentials as Twilio requires."""
        media = url if url.endswith((".mp3", ".wav")) else url + ".mp3"
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=RECORDING_TIMEOUT) as http,
                http.get(media, headers=headers) as r,
            ):
                if r.status in (404, 429) or r.status >= 500:
                    # 404: Twilio may not have finished processing the recording yet.
                    raise TwilioUnavailable(f"recording not available yet ({r.status})")
                if r.status >= 400:
                    raise TwilioRejected(f"Twilio refused the recording download ({r.status})")
                data = await r.read()
                content_type = r.headers.get("Content-Type", "audio/mpeg").split(";")[0]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TwilioUnavailable(f"cannot reach Twilio: {type(exc).__name__}: {exc}") from exc
        name = media.rsplit("/", 1)[-1]
        return Recording(data=data, content_type=content_type, filename=name)

    async def close(self) -> None:
        await self._http.close()
