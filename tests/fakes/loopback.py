"""What every fake server shares: listening on 127.0.0.1, on a free port the first time and the same
port after a stop (so a test can take a service down and bring it back where the gateway expects it),
and `async with` to start and stop it."""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LoopbackServer:
    """A fake server's lifecycle. Subclasses give `_handle` (every route) and may set
    `_client_max_size` (bodies larger than aiohttp's 1 MiB) and `_before_stop` (answer what waits)."""

    _client_max_size = 1024**2

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL to give the gateway."""
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port (0 before the first start)."""
        return self._port

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _before_stop(self) -> None:
        """Called as a stop begins, before the connections are closed."""

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port after a stop)."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=self._client_max_size)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = site.port
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening; everything recorded is kept."""
        if self._runner is None:
            return
        self._before_stop()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
