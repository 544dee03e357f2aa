"""`crm-gateway`: serve, upgrade the schema, manage agents and tokens, import and export clients.

Every command that prints a result takes `--json` and then prints exactly one JSON object on
stdout. Errors go to stderr, one line each, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm.domain.errors import CrmError, InvalidInput
from gateway.settings import Settings, SettingsError, load_settings, redact

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    from crm.service import Crm

EXIT_ERROR = 1
EXIT_CONFIG = 2
ACCESS_LOGGER = "aiohttp.access"  # aiohttp.log.access_logger's name (aiohttp is imported only to serve)

log = logging.getLogger("gateway")


class CliError(Exception):
    """A failure to report as one line on stderr."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201  # a CLI speaks on stderr
        return EXIT_CONFIG
    try:
        result = args.run(settings, args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    except InvalidInput as exc:
        for name, problem in exc.fields.items():
            print(f"error: {name}: {problem}", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    except (CrmError, CliError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    if result is not None:
        _emit(args, *result)
    return 0


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False))  # noqa: T201
    else:
        print(text)  # noqa: T201


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-gateway", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(metavar="COMMAND")

    def command(
        group: Any, name: str, help_text: str, run: Callable[..., Any], *, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=run)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    command(sub, "serve", "upgrade the schema, then serve until SIGINT/SIGTERM", _serve, json_flag=False)

    db = sub.add_parser("db", help="the database schema").add_subparsers(metavar="ACTION")
    command(db, "upgrade", "upgrade the schema to the newest version (Alembic)", _db_upgrade)

    agent = sub.add_parser("agent", help="agents who take calls and leads").add_subparsers(metavar="ACTION")
    add = command(agent, "add", "add an agent; prints the invite code for the Telegram bot", _agent_add)
    add.add_argument("name")
    add.add_argument("--phone", required=True, help="the agent's phone number, rung for calls")
    add.add_argument("--role", choices=("agent", "admin"), default="agent")
    add.add_argument("--sip", help="a SIP URI to ring instead of the phone (sip:alice@pbx.example.com)")
    add.add_argument("--client", help="a Twilio Client identity to ring instead of the phone")
    remove = command(
        agent,
        "remove",
        "an agent leaves: their clients, open deals and open tasks go to another",
        _agent_remove,
    )
    remove.add_argument("id", type=int)
    remove.add_argument(
        "--reassign-to", type=int, required=True, metavar="ID", help="the agent who takes over"
    )
    command(agent, "list", "list the agents", _agent_list)
    invite = command(
        agent,
        "invite",
        "a new invite code for an agent whose chat is lost: the old code and chat stop working",
        _agent_invite,
    )
    invite.add_argument("id", type=int)

    token = sub.add_parser("token", help="REST API tokens").add_subparsers(metavar="ACTION")
    create = command(token, "create", "make a bearer token for the REST API (shown once)", _token_create)
    create.add_argument("name", help="who or what uses it, e.g. 'pbx' or 'reports'")
    revoke = command(
        token, "revoke", "stop a token working, at once (every token of that name)", _token_revoke
    )
    revoke.add_argument("name")
    command(token, "list", "list the tokens that work (their names, never the tokens)", _token_list)

    imp = command(sub, "import", "import clients from a CSV file", _import)
    imp.add_argument("path", type=Path)
    exp = command(sub, "export", "export clients to a CSV file", _export)
    exp.add_argument("path", type=Path)
    return parser


def _with_store(settings: Settings, work: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """Run `work(store, crm)` on a store whose schema is current."""
    from crm.service import Crm
    from crm.storage.store import Store

    async def run() -> Any:
        store = Store(settings.database_url, pool_size=2)
        try:
            await store.upgrade()
            return await work(store, Crm(region=settings.default_region))
        finally:
            await store.close()

    return asyncio.run(run())


def _serve(settings: Settings, _args: argparse.Namespace) -> None:
    from aiohttp import log as web_log
    from aiohttp import web

    from gateway import routing_rules
    from gateway.app import create_app

    # A bad routing file stops start-up with one line, before anything is logged or served.
    rules = routing_rules.load(settings)
    if rules.rules:
        _with_store(settings, lambda store, _crm: routing_rules.verify(store, rules))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(settings.secrets()))
    off = settings.disabled_channels()
    if off:
        log.info("channels off: %s", "; ".join(off))
    app = create_app(settings, upgrade=True)
    app.on_startup.append(_freeze_on_startup)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=30,
        # A line per request costs about a fifth of the webhooks' throughput; a proxy in front
        # may log the requests instead (CRM_ACCESS_LOG=false).
        access_log=web_log.access_logger if settings.access_log else None,
        print=lambda _msg: log.info("serving on http://%s:%s", settings.host, settings.port),
    )


class RedactSecrets(logging.Filter):
    """Writes the settings' secrets as `***` in every line a handler logs, ours or a library's:
    an error's text may hold a URL with the bot token in it (aiogram's Bot API URLs do)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER:
            # The request line and headers a caller sent, nothing of ours; and a line per request.
            return True
        message = record.getMessage()
        if (clean := redact(message, self.secrets)) != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def freeze_startup_objects() -> None:
    """Leave what start-up made (modules, the bot's API types, mappers: some 300,000 objects)
    out of the garbage collector's passes; they live as long as the process anyway. Serving,
    the passes otherwise stop the loop for tens of milliseconds now and again under load; an
    import of a million rows makes thousands of them (about a tenth of its time)."""
    gc.collect()
    gc.freeze()


async def _freeze_on_startup(_app: object) -> None:
    freeze_startup_objects()


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, _crm: Any) -> None:
        return None

    _with_store(settings, work)
    return {"upgraded": True}, "schema is up to date"


def _how_to_bind(code: str) -> str:
    from crm.services.agents import INVITE_LIFETIME

    return f"to bind their Telegram chat, they send the bot within {INVITE_LIFETIME.days} days: /start {code}"


def _agent_add(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, crm: Any) -> Any:
        async with store.session() as s:
            return await crm.agents.add(
                s, args.name, phone=args.phone, role=args.role, sip_uri=args.sip, client_identity=args.client
            )

    agent = _with_store(settings, work)
    data = {
        "id": agent.id,
        "name": agent.name,
        "phone": agent.phone,
        "role": agent.role,
        "invite_code": agent.invite_code,
    }
    text = f"agent {agent.id} added: {agent.name} ({agent.phone}, {agent.role})\n" + _how_to_bind(
        agent.invite_code
    )
    return data, text


def _agent_remove(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, crm: Any) -> Any:
        async with store.session() as s:
            return await crm.handover.perform(s, args.id, args.reassign_to)

    moved = _with_store(settings, work)
    data = {
        "id": args.id,
        "reassigned": {"clients": moved.clients, "deals": moved.deals, "tasks": moved.tasks},
    }
    text = (
        f"agent {args.id} removed; {moved.clients} clients, {moved.deals} open deals and "
        f"{moved.tasks} open tasks went to agent {args.reassign_to}"
    )
    return data, text


def _agent_invite(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, crm: Any) -> Any:
        async with store.session() as s:
            return await crm.agents.new_invite(s, args.id)

    agent = _with_store(settings, work)
    text = (
        f"new invite for agent {agent.id} ({agent.name}); the old code and chat no longer work\n"
        + _how_to_bind(agent.invite_code)
    )
    return {"id": agent.id, "invite_code": agent.invite_code}, text


def _agent_list(settings: Settings, _args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from crm.services.agents import AgentView

    async def work(store: Any, crm: Any) -> list[AgentView]:
        async with store.reading() as s:
            return [AgentView.of(a) for a in await crm.agents.active(s)]

    agents: list[AgentView] = _with_store(settings, work)
    rows = [
        {
            "id": a.id,
            "name": a.name,
            "phone": a.phone,
            "role": a.role,
            "on_duty": a.on_duty,
            "telegram_bound": a.chat_bound,
        }
        for a in agents
    ]
    lines = [
        f"{a.id:>4}  {a.name:<24} {a.phone or '-':<16} {a.role:<6} "
        f"{'on duty' if a.on_duty else 'off':<8} {'bound' if a.chat_bound else 'not bound'}"
        for a in agents
    ]
    return {"agents": rows}, "\n".join(
        lines
    ) if lines else "no agents yet: add one with `crm-gateway agent add`"


def _token_create(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, crm: Crm) -> str:
        async with store.session() as s:
            return await crm.tokens.create(s, args.name)

    token = _with_store(settings, work)
    return {
        "name": args.name,
        "token": token,
    }, f"{token}\n(shown once: keep it; send it as Authorization: Bearer …)"


def _token_revoke(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async def work(store: Any, crm: Crm) -> int:
        async with store.session() as s:
            return await crm.tokens.revoke(s, args.name)

    count: int = _with_store(settings, work)
    text = f"token {args.name!r} revoked" if count == 1 else f"{count} tokens named {args.name!r} revoked"
    return {"name": args.name, "revoked": True}, text


def _token_list(settings: Settings, _args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from crm.services.tokens import TokenInfo

    async def work(store: Any, crm: Crm) -> list[TokenInfo]:
        async with store.reading() as s:
            return await crm.tokens.live(s)

    tokens: list[TokenInfo] = _with_store(settings, work)
    rows = [{"name": t.name, "created_at": t.created_at.isoformat()} for t in tokens]
    lines = [f"{t.name:<32} made {t.created_at:%Y-%m-%d %H:%M} UTC" for t in tokens]
    return {"tokens": rows}, "\n".join(
        lines
    ) or "no tokens yet: make one with `crm-gateway token create NAME`"


def _import(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from crm.files.csv_import import CsvFormatError, import_clients

    path: Path = args.path
    if not path.is_file():
        raise CliError(f"{path}: no such file")

    size = path.stat().st_size

    async def work(store: Any, crm: Any) -> Any:
        freeze_startup_objects()
        with _progress(size) as advance:
            return await import_clients(store, path, region=crm.region, clock=crm.clock, progress=advance)

    try:
        report = _with_store(settings, work)
    except CsvFormatError as exc:
        raise CliError(f"{path}: {exc}") from None
    data = report.as_json()
    lines = [f"created {report.created}, updated {report.updated}, skipped {report.skipped}"]
    lines += [f"line {e.line}: {e.reason}" for e in report.errors]
    return data, "\n".join(lines)


def _export(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from crm.files.csv_export import export_clients

    async def work(store: Any, _crm: Any) -> int:
        return await export_clients(store, args.path)

    count = _with_store(settings, work)
    return {"exported": count, "path": str(args.path)}, f"exported {count} clients to {args.path}"


class _progress:
    """A byte-based tqdm bar on a terminal; nothing when stderr is a pipe or a file."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc="importing", file=sys.stderr)

        def advance(done: int) -> None:
            if self.bar is not None:
                self.bar.update(done - self.bar.n)

        return advance

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
