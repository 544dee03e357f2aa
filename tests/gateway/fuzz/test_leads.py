"""Whatever a web page, a browser or a bot posts to `POST /leads` (url-encoded, multipart, JSON or
none of these), it gets no 5xx; a 4xx is JSON in the error shape, or an HTML page for a browser's
form post (CONTRACT.md, "The operator's first hour")."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.gateway.fuzz import strategies as gen
from tests.gateway.fuzz.world import World, fuzz

FIELDS = ["name", "phone", "email", "message", "source", "utm_source", "utm_campaign", "_gotcha", "_next"]
NEXT_URLS = [
    "http://127.0.0.1/thanks",
    "https://www.example.com/thanks",
    "javascript:alert(1)",
    "//evil.example",
    "http://[::1",
    "http://",
    "https://evil.example/%00",
]
FORM_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=bogus",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=latin-1",
]
ACCEPTS = [None, "application/json", "text/html", "*/*", "application/json, text/html", "text/html;q=0.1"]


def _values(name: str) -> st.SearchStrategy[str]:
    """Text a field may carry: realistic for its name three times in four, anything otherwise."""
    realistic = {
        "phone": gen.phones(),
        "email": gen.emails(),
        "name": gen.names(),
        "_next": st.sampled_from(NEXT_URLS),
        "_gotcha": st.sampled_from(["", "x"]),
    }.get(name, st.text(max_size=20))
    return gen.mostly(realistic, gen.texts(surrogates=False))


def _pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Form fields in order, mostly starting with a phone or an e-mail (a lead needs one), names
    repeated at times (checkboxes, or a confused script)."""
    names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10))
    pairs = names.flatmap(lambda n: st.tuples(st.just(n), _values(n)))
    contact = st.sampled_from(["phone", "email"]).flatmap(lambda n: st.tuples(st.just(n), _values(n)))
    first = gen.mostly(st.lists(contact, min_size=1, max_size=2), st.just([]))
    return st.builds(lambda a, b: a + b, first, st.lists(pairs, max_size=6))


def _urlencoded(pairs: list[tuple[str, str]], garbage: str) -> bytes:
    encoded = "&".join(f"{gen.query_value(k)}={gen.query_value(v)}" for k, v in pairs)
    return (encoded + garbage).encode()


BOUNDARY = "----fuzz7MA4YWxkTrZu0gW"


def _multipart(pairs: list[tuple[str, str]], file: bytes | None) -> bytes:
    """A multipart/form-data body as a browser writes it (names escaped as the HTML standard
    says; any other character, control characters too, as it is)."""

    def name(text: str) -> bytes:
        return text.replace("\n", "%0A").replace("\r", "%0D").replace('"', "%22").encode()

    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (BOUNDARY.encode(), name(k), v.encode())
        for k, v in pairs
    ]
    if file is not None:
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\n%s\r\n" % (BOUNDARY.encode(), file)
        )
    return b"".join(parts) + b"--%s--\r\n" % BOUNDARY.encode()


@fuzz(examples=350)
@given(data=st.data())
async def test_no_lead_posted_in_any_encoding_gets_a_5xx(world: World, data: st.DataObject) -> None:
    encoding = data.draw(
        gen.mostly(st.sampled_from(["urlencoded", "multipart", "json"]), st.just("other")), label="encoding"
    )
    headers: dict[str, str] = {}
    accept = data.draw(st.sampled_from(ACCEPTS), label="accept")
    if accept is not None:
        headers["Accept"] = accept
    if data.draw(st.booleans(), label="cross-origin"):
        headers["Origin"] = data.draw(
            st.sampled_from(["https://www.example.com", "null", "https://evil.example"])
        )
    body: Any
    if encoding == "urlencoded":
        garbage = data.draw(
            st.sampled_from(["", "&name=%ff%fe", "&%zz=%", "&&=&", "&email"]), label="garbage"
        )
        body = _urlencoded(data.draw(_pairs(), label="fields"), garbage)
        headers["Content-Type"] = data.draw(gen.mostly(st.just(FORM_TYPES[0]), st.sampled_from(FORM_TYPES)))
    elif encoding == "multipart":
        file = data.draw(st.none() | st.binary(max_size=32), label="file")
        body = _multipart(data.draw(_pairs(), label="fields"), file)
        headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    elif encoding == "json":
        shaped = st.dictionaries(st.sampled_from(FIELDS) | gen.texts(), gen.any_json(), max_size=6)
        realistic = st.fixed_dictionaries(
            {"email": _values("email")}, optional={f: _values(f) for f in FIELDS if f != "email"}
        )
        body = data.draw(gen.json_bodies(st.one_of(realistic, shaped)), label="body")
        headers["Content-Type"] = "application/json"
    else:
        body = data.draw(st.binary(max_size=64), label="body")
        headers["Content-Type"] = data.draw(
            st.sampled_from(["text/plain", "application/xml", "multipart/form-data", "application/json; x"])
        )
    answer = await world.send("POST", "/leads", headers=headers, body=body)
    browser = encoding in ("urlencoded", "multipart") and "application/json" not in (accept or "")
    answer.obeys_the_contract(html_ok=browser)


@fuzz(examples=100)
@given(data=st.data())
async def test_no_query_of_the_embeddable_form_gets_a_5xx(world: World, data: st.DataObject) -> None:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "_next": gen.mostly(st.sampled_from(NEXT_URLS), gen.texts(longest=300)),
            "source": gen.texts(longest=300),
            "lang": st.sampled_from(["en", "ru", "de", "xx"]),
        },
    )
    query = "&".join(f"{k}={gen.query_value(v)}" for k, v in data.draw(fields, label="query").items())
    answer = await world.send("GET", "/forms/lead" + (f"?{query}" if query else ""))
    answer.obeys_the_contract()
