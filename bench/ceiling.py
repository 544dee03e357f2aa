"""The ceiling: a bare aiohttp app answering every POST with a fixed TwiML, as fast as aiohttp can.

`--parse-form` also reads the form body (`await request.post()`), the "+ parse the form" row of
DESIGN.md. `--check-signature TOKEN --public-url URL` also checks the `X-Twilio-Signature` as the
gateway does (`telephony.twilio.signature`; the requests are signed for the gateway's URL): what is
left of the ceiling before any of the gateway's own work. The benchmark runs these on the
gateway's core and states the gateway's figures as ratios to the first, measured in the same run.

    .venv/bin/python -m bench.ceiling [--port 8090] [--parse-form] [--check-signature TOKEN --public-url URL]
"""

from __future__ import annotations

import argparse

from aiohttp import web

from telephony.twilio.signature import is_from_twilio, public_request_url

TWIML = "<Response><Dial><Number>+14155550001</Number></Dial></Response>"


async def fixed(_request: web.Request) -> web.Response:
    return web.Response(text=TWIML, content_type="text/xml")


async def parsed(request: web.Request) -> web.Response:
    form = await request.post()
    if "CallSid" not in form:
        return web.Response(status=400, text="CallSid is required")
    return web.Response(text=TWIML, content_type="text/xml")


def checking(auth_token: str, public_url: str) -> web.Handler:
    async def signed(request: web.Request) -> web.Response:
        form = await request.post()
        url = public_request_url(public_url, request.path_qs)
        if not is_from_twilio(auth_token, url, form, request.headers.get("X-Twilio-Signature")):  # type: ignore[arg-type]
            return web.Response(status=403, text="the X-Twilio-Signature does not match")
        return web.Response(text=TWIML, content_type="text/xml")

    return signed


def make_app(*, parse_form: bool, auth_token: str | None = None, public_url: str = "") -> web.Application:
    app = web.Application()
    handler = checking(auth_token, public_url) if auth_token else parsed if parse_form else fixed
    app.router.add_post("/{tail:.*}", handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--parse-form", action="store_true")
    parser.add_argument("--check-signature", metavar="TOKEN", help="Twilio auth token to check with")
    parser.add_argument("--public-url", default="", help="the URL the requests were signed for")
    args = parser.parse_args()
    app = make_app(parse_form=args.parse_form, auth_token=args.check_signature, public_url=args.public_url)
    web.run_app(app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
