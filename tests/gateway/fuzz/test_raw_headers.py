"""Whatever bytes a header carries (HTTP allows any byte from 0x80 up, which need not be UTF-8),
on the headers the gateway reads (the bearer token, the Twilio signature, the Telegram secret, the
browser's Origin and Accept), the answer is no 5xx and a 4xx is JSON in the error shape. Sent on a
raw socket: HTTP clients refuse to send such headers at all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.gateway.fuzz.world import World, fuzz

# What HTTP's parser lets through in a header value: tab, space, visible ASCII and obs-text
# (bytes from 0x80). Control characters never reach the gateway: the parser itself refuses them.
VALUE_BYTES = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip()
)
TARGETS = {
    "GET /api/v1/agents": [b"Authorization"],
    "POST /webhooks/twilio/voice": [b"X-Twilio-Signature"],
    "POST /webhooks/twilio/status": [b"X-Twilio-Signature"],
    "POST /webhooks/telegram": [b"X-Telegram-Bot-Api-Secret-Token"],
    "POST /leads": [b"Origin", b"Accept", b"Accept-Language", b"Referer"],
}


@fuzz(examples=150)
@given(data=st.data())
async def test_no_header_bytes_get_a_5xx(world: World, data: st.DataObject) -> None:
    request = data.draw(st.sampled_from(sorted(TARGETS)), label="request")
    name = data.draw(st.sampled_from([*TARGETS[request], b"X-Anything"]), label="header")
    value = data.draw(VALUE_BYTES, label="value")
    if name == b"Authorization":
        value = (
            data.draw(st.sampled_from([b"", b"Bearer ", world.token.encode() + b" "]), label="prefix") + value
        )
    body = b"email=ada%40example.com" if request.startswith("POST") else b""
    answer = await world.send_raw(
        request.encode(),
        [(name, value), (b"Content-Type", b"application/x-www-form-urlencoded")],
        body,
    )
    answer.obeys_the_contract(html_ok=request == "POST /leads")
