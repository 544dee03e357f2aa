"""The ceiling: a bare aiohttp app answering every POST with a fixed TwiML, as fast as aiohttp can.

`--parse-form` also reads the form body (`await request.post()`), the "+ parse the form" row of
DESIGN.md. The benchmark runs it on the gateway's core and states the gateway's figures as ratios
to this one, measured in the same run.

    .venv/bin/python -m bench.ceiling [--port 8090] [--parse-form]
"""

from __future__ import annotations

import argparse

from aiohttp import web

TWIML = "<Response><Dial><Number>+14155550001</Number></Dial></Response>"


async def fixed(_request: web.Request) -> web.Response:
    return web.Response(text=TWIML, content_type="text/xml")


async def parsed(request: web.Request) -> web.Response:
    form = await request.post()
    if "CallSid" not in form:
        return web.Response(status=400, text="CallSid is required")
    return web.Response(text=TWIML, content_type="text/xml")


def make_app(*, parse_form: bool) -> web.Application:
    app = web.Application()
    app.router.add_post("/{tail:.*}", parsed if parse_form else fixed)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--parse-form", action="store_true")
    args = parser.parse_args()
    web.run_app(make_app(parse_form=args.parse_form), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
