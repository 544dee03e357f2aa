"""Small text rules shared by matching and search: folded names, normalised e-mail addresses."""

from __future__ import annotations

import re
import unicodedata

from crm.domain.errors import InvalidInput

# Deliberately simple: one @, a dot in the domain, no spaces. Real validity is proven by delivery.
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]{2,}$")
MAX_NAME = 300
MAX_EMAIL = 320


def fold(text: str) -> str:
    """Case- and accent-insensitive form for search: `Müller` and `MULLER` both fold to `muller`.

    Cut to MAX_NAME: decomposition can lengthen a text ("…" folds to "..."), and folded names
    are stored in a column of that size.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:MAX_NAME]


def clean_name(name: str | None, field: str = "name") -> str:
    """A display name with white space tidied; empty names are refused."""
    text = " ".join((name or "").split())
    if not text:
        raise InvalidInput({field: "must not be empty"})
    if len(text) > MAX_NAME:
        raise InvalidInput({field: f"longer than {MAX_NAME} characters"})
    return text


def shorten_name(name: str) -> str:
    """A name that came with a message or a call (not typed into a form field we can refuse):
    tidied and cut to fit, never refused."""
    text = " ".join(name.split())
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def normalize_email(raw: str) -> str:
    """The lower-cased address used for matching, or `ValueError` saying what is wrong."""
    text = raw.strip()
    if len(text) > MAX_EMAIL:
        raise ValueError(f"longer than {MAX_EMAIL} characters")
    if not _EMAIL.match(text):
        raise ValueError(f"{text!r} is not an e-mail address")
    return text.casefold()


def storable(text: str) -> str:
    """`text` as both databases can keep it: NUL characters dropped, unpaired surrogates made `?`.
    JSON (`"\\u0000"`, `"\\ud800"`) and forms (`%00`) carry both; PostgreSQL stores no NUL, and no
    driver encodes a lone surrogate."""
    text = text.replace("\x00", "")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def split_list(value: str | None) -> list[str]:
    """`a; b, c` → `["a", "b", "c"]`: how CSV cells hold several phones, e-mails or tags."""
    if not value:
        return []
    return [part.strip() for part in re.split(r"[;,]", value) if part.strip()]
