"""What strangers send: text of any length and alphabet, integers past 64 bits, times at the edges
of the calendar, JSON of any shape and depth, and JSON shaped like a schema with odd values in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# `st.datetimes` takes naive bounds; the zones come from its `timezones` argument.
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)  # noqa: DTZ001
THIS_CENTURY = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001

LONG_PHONE = "+1 415 555 0100" + " -" * 40  # a valid number, spelled with more than 64 characters

EDGE_INTS = [
    0,
    -1,
    1,
    2,
    200,
    201,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**25,
    -(10**25),
]

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udcffy",
    "é",
    "Ωmega Müller",
    "💥",
    "\u202eevil",
    "\r\n",
    "\t",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "NaN",
    "Infinity",
    "9" * 26,
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-14:00",
    LONG_PHONE,
    "+1 415 555 0100",
    "(415) 555-0100 ext. 12",
    "+14155550100",
    "ada@example.com",
    "x" * 65,
    "x" * 301,
    "<script>alert(1)</script>",
    "%ff%fe",
    "'; DROP TABLE clients; --",
    '=HYPERLINK("http://x")',
]

EDGE_TIMES = [
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+00:00",
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00Z",
    "2999-12-31T23:59:59+00:00",
    "3000-01-01T00:00:00+00:00",
    "2026-03-02T15:30:00",
    "2026-03-02T15:30:00+01:00",
    "2026-02-30T10:00:00Z",
    "2026-03-02T25:00:00Z",
    "yesterday",
]

ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)), timezone(timedelta(hours=5.5))]


def ints() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from(EDGE_INTS), st.integers(), st.integers(min_value=-(2**200), max_value=2**200)
    )


def texts(*, surrogates: bool = True, longest: int = 2_100_000) -> st.SearchStrategy[str]:
    """Any text: the odd ones above, random ones (with unpaired surrogates when `surrogates`),
    and long ones up to `longest` (by default twice the 1 MiB body limit; cheap to make)."""
    odd = [t for t in ODD_TEXT if surrogates or not has_surrogates(t)]
    alphabet = st.characters(exclude_categories=[] if surrogates else ["Cs"])
    long = st.tuples(st.sampled_from(["x", "é", " ", "9", "\x00"]), st.integers(60, longest)).map(
        lambda t: t[0] * t[1]
    )
    short = st.one_of(st.sampled_from(odd), st.text(max_size=20), st.text(alphabet, max_size=20))
    return st.one_of(short, short, short, short, short, short, short, long)  # long ones in eight


def has_surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def times() -> st.SearchStrategy[str]:
    """ISO 8601 times from year 1 to 9999, with and without an offset, and broken ones."""
    moments = st.datetimes(
        min_value=FIRST,
        max_value=LAST,
        timezones=st.one_of(st.none(), st.sampled_from(ZONES)),
    )
    return st.one_of(st.sampled_from(EDGE_TIMES), moments.map(datetime.isoformat), texts())


def plausible_times() -> st.SearchStrategy[str]:
    """Times a script would send: this century, with an offset."""
    moments = st.datetimes(
        min_value=THIS_CENTURY[0], max_value=THIS_CENTURY[1], timezones=st.sampled_from(ZONES)
    )
    return moments.map(datetime.isoformat)


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), ints(), st.floats(allow_nan=False, allow_infinity=False), texts()
    )


def any_json() -> st.SearchStrategy[Any]:
    """JSON values of any shape (a few levels deep: `deep_json` nests further)."""
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts(), inner, max_size=4)),
        max_leaves=8,
    )


def deep_json() -> st.SearchStrategy[bytes]:
    """JSON nested from just under the gateway's limit to far past the parser's recursion limit,
    bare or inside an object's field."""

    def nest(depth: int, kind: str, field: str | None) -> bytes:
        inner = b"[" * depth + b"]" * depth if kind == "list" else b'{"a":' * depth + b"1" + b"}" * depth
        return inner if field is None else b'{"' + field.encode() + b'": ' + inner + b"}"

    return st.builds(
        nest,
        st.sampled_from([30, 31, 32, 33, 100, 999, 1000, 100_000]),
        st.sampled_from(["list", "object"]),
        st.sampled_from([None, "name", "custom", "client_id", "due_at", "message"]),
    )


def encode_json(value: Any, ascii_only: bool) -> bytes:
    """`value` as JSON; unpaired surrogates escaped (`\\ud800`), or, when not `ascii_only`, sent
    as the bytes they would be (not UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def json_bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bodies that are JSON (mostly `shaped`, else of any shape), too deep, or not JSON at all."""
    broken = st.sampled_from(
        [b"", b"{", b"NaN", b'{"a": NaN}', b'{"a": 1e400}', b"1" * 5000, b'"text"', b"[]"]
    )
    return mostly(
        st.builds(encode_json, shaped, st.booleans()),
        st.one_of(
            st.builds(encode_json, any_json(), st.booleans()), deep_json(), st.binary(max_size=64), broken
        ),
    )


def query_value(value: str) -> str:
    """One query value percent-encoded as a browser would; unpaired surrogates as the bytes they
    would be (which are not UTF-8)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def mostly(right: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`right` three times in four: enough valid requests get past validation into the flows."""
    return st.one_of(right, right, right, odd)


def phones() -> st.SearchStrategy[str]:
    """Numbers as people write them (some of them the seeded clients' and agents')."""
    return st.one_of(
        st.sampled_from(["+14155550100", "(415) 555-0101", "+44 7700 900123", "+1 415-555-0001", "12"]),
        st.integers(0, 9999).map(lambda n: f"+1 415 555 {n:04d}"),
    )


def emails() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 50).map(lambda n: f"user{n}@example.com"), st.sampled_from(["ada@", "a@b", "x@y.zz"])
    )


def names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["Ada Lovelace", "Grace Hopper", "Müller GmbH", "李小龙"]),
        st.text(min_size=1, max_size=20),
    )


def from_schema(
    schema: dict[str, Any],
    components: dict[str, Any],
    hints: dict[str, st.SearchStrategy[Any]],
    *,
    wild: bool,
) -> st.SearchStrategy[Any]:
    """Values shaped like the JSON Schema `schema` (as pydantic writes it). Tame (`wild=False`):
    every value of its field's type, but of any content (text of any length and alphabet, integers
    past 64 bits, times at the calendar's edges), and realistic where `hints` name the field (ids
    that exist, phones, e-mails), so that requests get past validation into the flows. Wild: wrong
    types, missing and unexpected fields too."""

    def inner(s: dict[str, Any]) -> st.SearchStrategy[Any]:
        return from_schema(s, components, hints, wild=wild)

    def either(right: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return mostly(right, st.one_of(odd, scalars())) if wild else right

    if "$ref" in schema:
        return inner(components[schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of(*(inner(s) for s in schema.get("anyOf") or schema["oneOf"]))
    if "enum" in schema:
        return either(st.sampled_from(schema["enum"]), texts())
    if "const" in schema:
        return either(st.just(schema["const"]), scalars())
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "date-time":
        return times()
    if kind == "string":
        limit = schema.get("maxLength")
        edge = st.sampled_from(["a" * limit, "é" * (limit + 1)]) if limit else st.nothing()
        return mostly(st.text(max_size=20), st.one_of(edge, texts()))
    if kind == "integer":
        return either(ints(), st.nothing())
    if kind == "number":
        return either(st.floats(allow_nan=False, allow_infinity=False), ints())
    if kind == "boolean":
        return either(st.booleans(), st.nothing())
    if kind == "null":
        return st.none()
    if kind == "array":
        items = inner(schema.get("items", {}))
        return either(st.lists(items, max_size=4), st.lists(texts(), min_size=20, max_size=120))
    if kind == "object" and "properties" in schema:
        fields = {
            name: mostly(hints[name], inner(s)) if name in hints else inner(s)
            for name, s in schema["properties"].items()
        }
        required = {name: fields[name] for name in schema.get("required", [])}
        optional = {name: f for name, f in fields.items() if name not in required}
        shaped = st.fixed_dictionaries(required, optional=optional)
        return either(shaped, st.fixed_dictionaries({}, optional={**fields, "unexpected": any_json()}))
    if kind == "object":
        return st.dictionaries(texts(), any_json(), max_size=5)
    return any_json()
