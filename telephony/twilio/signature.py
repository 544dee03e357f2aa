"""Is this request from Twilio? The `X-Twilio-Signature` header, checked with the twilio library's
`RequestValidator` against the URL Twilio called: our public URL (what Twilio was configured
with, so behind a TLS proxy the https one) plus the path and query string it requested."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def public_request_url(public_url: str, path_qs: str) -> str:
    return public_url.rstrip("/") + path_qs


def is_from_twilio(auth_token: str, url: str, params: Mapping[str, str] | str, signature: str | None) -> bool:
    """True when `signature` is Twilio's for `url` and the form `params` (or a JSON body string,
    whose `bodySHA256` query parameter the validator checks)."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))
