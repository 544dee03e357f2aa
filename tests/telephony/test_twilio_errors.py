"""What Twilio's REST client reports when Twilio cannot be reached goes into the outbox's
`last_error` and the log: it must never carry the account's credentials."""

from __future__ import annotations

import base64

import pytest

from telephony.twilio.rest import TwilioRest, TwilioUnavailable
from tests.fakes.not_http import not_http_server  # noqa: F401  # fixture

SID = "AC" + "0" * 32
TOKEN = "s3cr3t-auth-token-0123456789abcd"


async def test_an_answer_that_is_not_http_is_reported_without_the_credentials(
    not_http_server: str,  # noqa: F811
) -> None:
    rest = TwilioRest(SID, TOKEN, not_http_server)
    credentials = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    try:
        for attempt in (
            rest.place_call(
                to="+14155550001", from_="+14155550000", url="http://x/", status_callback="http://x/"
            ),
            rest.recent_calls(to="+14155550001", from_="+14155550000"),
            rest.fetch_recording(f"{not_http_server}/2010-04-01/Accounts/{SID}/Recordings/RE1"),
        ):
            with pytest.raises(TwilioUnavailable) as raised:
                await attempt
            said = str(raised.value)
            assert said.startswith("cannot reach Twilio: ")
            assert TOKEN not in said and credentials not in said and "Authorization" not in said
    finally:
        await rest.close()
