"""Is this request from Twilio? The `X-Twilio-Signature` header, checked with the twilio library's
`RequestValidator` against the URL Twilio called: our public URL (what Twilio was configured
with, so behind a TLS proxy the https one) plus the path and query string it requested."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator


def public_request_url(public_url: str, path_qs: str) -> str:
    return public_url.rstrip("/") + path_qs


def is_from_twilio(auth_token: str, url: str, params: Mapping[str, str] | str, signature: str | None) -> bool:
    """True when `signature` is Twilio's for `url` and the form `params` (or a JSON body string,
    whose `bodySHA256` query parameter the validator checks).

    Twilio's signatures are base64 (ASCII): anything else is refused before comparing, as
    `hmac.compare_digest` raises on other text. A JSON body is Twilio's only with its hash in the
    URL; without it the validator would read the body as a form and fail."""
    if not signature or not signature.isascii():
        return False
    if isinstance(params, str) and "bodySHA256" not in parse_qs(urlsplit(url).query):
        return False
    validator = _validator(auth_token)
    if not isinstance(params, str) and hmac.compare_digest(
        validator.compute_signature(url, params), signature
    ):
        # Signed for exactly the URL we were called at: the common case, in one HMAC. The full
        # check below also tries the URL with and without its port (two more).
        return True
    return bool(validator.validate(url, params, signature))


@lru_cache(maxsize=4)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)
