"""Whatever reaches a Twilio URL of the gateway, signed with the account's token or forged, as a
form or as something else, it gets no 5xx; refusals are JSON in the error shape. The URLs are the
ones the gateway serves (read from its router), so a new callback is attacked as soon as it exists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.fakes.twilio import new_sid
from tests.gateway.fuzz import strategies as gen
from tests.gateway.fuzz.world import World, fuzz

STATUSES = ["queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]
NUMBERS = ["From", "To", "Caller", "Called"]
SIDS = ["CallSid", "ParentCallSid", "DialCallSid", "RecordingSid", "AccountSid"]
DURATIONS = ["CallDuration", "DialCallDuration", "RecordingDuration"]
OTHERS = [
    "CallStatus",
    "DialCallStatus",
    "RecordingStatus",
    "DialBridged",
    "RecordingUrl",
    "Direction",
    "Digits",
]
FORGED = ["Zm9yZ2Vk", "é", "\u00ff\u00fe", "💥", "a" * 500, " "]
HEADER_TEXT = st.characters(exclude_categories=["Cc", "Cs"])  # what an HTTP client lets through


@pytest.fixture
def twilio_paths(world: World) -> list[str]:
    """Every Twilio URL the gateway serves."""
    paths = sorted(
        {
            r.resource.canonical
            for r in world.server.app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/webhooks/twilio/")
        }
    )
    assert len(paths) >= 2, paths
    return paths


def _value(name: str, known: list[str]) -> st.SearchStrategy[str]:
    """What Twilio sends for `name` (a call it knows about, often), or any other text."""
    if name in SIDS:
        right: st.SearchStrategy[str] = st.one_of(st.sampled_from(known), st.just("CA").map(new_sid))
    elif name in NUMBERS:
        right = st.one_of(
            gen.phones(), st.sampled_from(["anonymous", "sip:alice@example.com", "client:bob", ""])
        )
    elif name in DURATIONS:
        right = st.one_of(st.integers(0, 7200).map(str), gen.ints().map(str))
    elif name.endswith("Status"):
        right = st.sampled_from([*STATUSES, "answered"])
    elif name == "RecordingUrl":
        right = st.sampled_from(["https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", "ftp://x"])
    else:
        right = st.text(max_size=10)
    return gen.mostly(right, gen.texts(surrogates=False, longest=3000))


def _params(known: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Parameters as Twilio names them (a `CallSid` nearly always), and a few it never sends."""
    named = {n: _value(n, known) for n in NUMBERS + SIDS + DURATIONS + OTHERS}
    shaped = st.fixed_dictionaries({"CallSid": named.pop("CallSid")}, optional=named)
    extra = st.dictionaries(st.text(max_size=8), gen.texts(surrogates=False, longest=3000), max_size=3)
    return st.builds(lambda a, b: {**b, **a}, gen.mostly(shaped, st.just({})), extra)


def _query(known_ids: tuple[int, ...]) -> st.SearchStrategy[str]:
    """The query string of our own callback URLs (`call`, `agent`, `voicemail`), or odd ones."""
    known = st.sampled_from([str(i) for i in known_ids])
    ids = gen.mostly(known, st.one_of(gen.ints().map(str), gen.texts(longest=80)))
    fields = st.fixed_dictionaries(
        {}, optional={"call": ids, "agent": ids, "voicemail": st.sampled_from(["1", "0", "yes"]), "x": ids}
    )
    return fields.map(lambda f: "&".join(f"{k}={gen.query_value(v)}" for k, v in f.items()))


@fuzz(examples=400)
@given(data=st.data())
async def test_no_request_to_a_twilio_url_gets_a_5xx(
    world: World, twilio_paths: list[str], data: st.DataObject
) -> None:
    """Half the requests are signed as Twilio signs them (anything may be in them: only Twilio and
    whoever has the auth token can sign); the others are forged, unsigned or not even forms."""
    path = data.draw(st.sampled_from([*twilio_paths, "/webhooks/twilio/nothing"]), label="path")
    query = data.draw(_query(world.known_ids), label="query")
    target = path + (f"?{query}" if query else "")
    assume(len(target) < 8000)  # longer request lines are refused by aiohttp's HTTP parser itself
    known = [c.sid for c in world.twilio.calls]
    params = data.draw(_params(known), label="params")
    how = data.draw(
        st.sampled_from(["signed", "signed", "forged", "unsigned", "json", "multipart"]), label="how"
    )
    headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
    body: Any = "&".join(f"{gen.query_value(k)}={gen.query_value(v)}" for k, v in params.items()).encode()
    if how == "signed":
        headers["X-Twilio-Signature"] = world.twilio.sign(world.public_url + target, params)
    elif how == "forged":
        headers["X-Twilio-Signature"] = data.draw(
            st.sampled_from(FORGED) | st.text(HEADER_TEXT, max_size=40), label="sig"
        )
    elif how == "json":
        body = json.dumps(params).encode()
        headers = {"Content-Type": "application/json", "X-Twilio-Signature": "Zm9yZ2Vk"}
    elif how == "multipart":
        body = (
            b'--zz\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\nCA1\r\n'
            b'--zz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx\r\n--zz--\r\n'
        )
        headers = {"Content-Type": "multipart/form-data; boundary=zz", "X-Twilio-Signature": "Zm9yZ2Vk"}
    answer = await world.send("POST", target, headers=headers, body=body)
    answer.obeys_the_contract()
