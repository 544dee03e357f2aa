"""Card pop: how long from an agent answering a call to the card's request reaching Telegram.

Runs `crm-gateway serve` as its own process on CPU 0 (a SQLite file, its real outbox sender)
against the fakes of the tests, real HTTP servers on loopback in this process on CPU 1:
`tests.fakes.twilio.TwilioSimulator` places inbound calls and answers them,
`tests.fakes.bot_api.BotApiServer` is the Bot API. Every call comes from its own number, a client
owned by one of `--agents` agents (each on duty, each with their own Telegram chat), so it rings
that agent alone. Calls start at `--rate` a second for `--seconds` seconds.

    .venv/bin/python -m bench.card_pop [--rate 50] [--seconds 10] [--agents 50] [--paid-broadcast]

The Bot API server is strict: a send past Telegram's limits (30 a second overall, 1000 for paid
broadcasts, one a second per chat) is refused with 429 and counted.

The answer moment is when the simulator starts the first request that tells the gateway who
answered: the answering leg's `in-progress` status callback, or the screening URL
(`/webhooks/twilio/answered`), whichever it sends first (it sends the status callback first). The
arrival moment is when the Bot API server handles a `sendMessage` whose text has "Call from" and
the caller's number (after reading the request's body). Both clocks are `time.monotonic()` of
this process, which also runs the load and both fakes: the figures include their share of
CPU 1 and the loopback, so they are an upper bound of what the gateway alone would take.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from bench.run import LOAD_CPU, free_port, server
from crm.service import Crm
from crm.storage.store import Store
from tests.fakes.bot_api import BotApiServer
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, HttpAnswer, TwilioSimulator

CHAT_BASE = 70_000
NEVER_S = 5.0  # a card later than this counts as never arrived
_CALL_FROM = re.compile(r"Call from ([+\d][\d\s()+\-.]*)")


def agent_phone(i: int) -> str:
    return f"+1415555{1000 + i:04d}"


def caller_phone(k: int) -> str:
    return f"+1628555{k:04d}"


def _e164(shown: str) -> str:
    return "+" + re.sub(r"\D", "", shown)


class StampingBotApi(BotApiServer):
    """The fake Bot API, noting when each card (a "Call from …" sendMessage) arrives, by caller."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.card_at: dict[str, float] = {}

    def _m_sendMessage(self, params: Any) -> Any:
        now = time.monotonic()
        text = params.get("text")
        if isinstance(text, str):
            match = _CALL_FROM.search(re.sub(r"<[^>]+>", "", text))
            if match:
                self.card_at.setdefault(_e164(match.group(1)), now)
        return super()._m_sendMessage(params)


class StampingTwilio(TwilioSimulator):
    """The Twilio simulator, noting when it starts telling the gateway who answered, by CallSid."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered_at: dict[str, float] = {}

    async def _send(self, url: str, params: Any, *, purpose: Any, **kwargs: Any) -> HttpAnswer | None:
        tells = purpose == "screen" or (purpose == "leg-status" and params.get("CallStatus") == "in-progress")
        if tells:
            self.answered_at.setdefault(kwargs.get("call_sid", ""), time.monotonic())
        return await super()._send(url, params, purpose=purpose, **kwargs)


def _ms(value: float) -> float | None:
    """Milliseconds rounded; None past `NEVER_S` (a card that never came)."""
    return None if math.isinf(value) or math.isnan(value) else round(value, 1)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


async def measure(
    rate: float = 50, seconds: float = 10, agents: int = 50, warmup: int = 3, *, paid_broadcast: bool = False
) -> dict[str, Any]:
    total = round(rate * seconds)
    if total + warmup > 8000 or agents > 8000:
        raise ValueError("at most 8000 calls and 8000 agents (numbers +1628555XXXX / +1415555XXXX)")
    with tempfile.TemporaryDirectory(prefix="crm-card-pop-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'card-pop.db'}"
        store = Store(url)
        try:
            await store.upgrade()
            await _populate(store, Crm(region="US"), agents, total + warmup)
        finally:
            await store.close()
        # Strict: a send past Telegram's limits (30 a second free, 1000 paid, 1 per chat) is a 429.
        async with StampingBotApi(enforce_limits=True) as telegram:
            port = free_port()
            env = _gateway_env(url, telegram, port, paid_broadcast=paid_broadcast)
            async with (
                _gateway(env, port, Path(tmp) / "gateway.log") as gateway_pid,
                StampingTwilio(
                    base_url=f"http://127.0.0.1:{port}",
                    account_sid=DEFAULT_ACCOUNT_SID,
                    auth_token=DEFAULT_AUTH_TOKEN,
                ) as twilio,
            ):
                res = await _drive(twilio, telegram, rate, total, agents, warmup, lambda: cpu_s(gateway_pid))
        res["paid_broadcast"] = paid_broadcast
        res["refused_sends"] = sum(
            1 for c in telegram.history if c.method == "sendMessage" and c.status == 429
        )
        res["paid_sends"] = sum(1 for c in range(agents) for m in telegram.messages(CHAT_BASE + c) if m.paid)
        return res


def _gateway_env(url: str, telegram: BotApiServer, port: int, *, paid_broadcast: bool) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return {
        **clean,
        "CRM_DATABASE_URL": url,
        "CRM_HOST": "127.0.0.1",
        "CRM_PORT": str(port),
        "CRM_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CRM_TELEGRAM_BOT_TOKEN": telegram.token,
        "CRM_TELEGRAM_API_URL": telegram.url,
        "CRM_TELEGRAM_PAID_BROADCAST": "true" if paid_broadcast else "false",
        "CRM_TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CRM_TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
    }


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system, all threads) process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def _gateway(env: dict[str, str], port: int, log: Path) -> AsyncIterator[int]:
    """`crm-gateway serve` as a process of its own on `bench.run`'s server CPU (`bench.run.server`,
    whose blocking start and stop run on a thread while the fakes keep serving on this loop);
    this process (the load, the fake Twilio and the fake Bot API) moves to the load CPU."""
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    gateway = [str(Path(sys.executable).parent / "crm-gateway"), "serve"]
    with ExitStack() as running:
        probe = f"http://127.0.0.1:{port}/healthz"
        pid = await asyncio.to_thread(running.enter_context, server(gateway, probe, env=env, log=log))
        try:
            yield pid
        finally:
            await asyncio.to_thread(running.close)


async def _populate(store: Store, crm: Crm, agents: int, callers: int) -> None:
    """`agents` agents on duty with their chats; `callers` clients, client k owned by agent k % agents."""
    ids = []
    async with store.session() as s:
        for i in range(agents):
            agent = await crm.agents.add(s, f"Agent {i}", phone=agent_phone(i))
            await crm.agents.bind_chat(
                s, agent.invite_code or "", chat_id=CHAT_BASE + i, user_id=CHAT_BASE + i
            )
            ids.append(agent.id)
    async with store.session() as s:
        for k in range(callers):
            match = await crm.clients.find_or_create_by_phone(s, caller_phone(k), name=f"Caller {k}")
            await crm.clients.set_owner_if_none(s, match.client_id, ids[k % agents])


async def _call(twilio: StampingTwilio, k: int, agents: int, sids: dict[str, str], errors: list[str]) -> None:
    try:
        call = await twilio.inbound(from_=caller_phone(k))
        sids[call.sid] = caller_phone(k)
        await call.answer(by=agent_phone(k % agents), talk_seconds=30)
    except Exception as exc:  # counted and shown, the run goes on
        errors.append(f"call {k}: {type(exc).__name__}: {str(exc)[:200]}")


async def _drive(
    twilio: StampingTwilio,
    telegram: StampingBotApi,
    rate: float,
    total: int,
    agents: int,
    warmup: int,
    gateway_cpu_s: Callable[[], float],
) -> dict[str, Any]:
    sids: dict[str, str] = {}
    errors: list[str] = []
    for k in range(warmup):  # one at a time, not counted: first-use costs (connections, caches)
        await _call(twilio, total + k, agents, {}, errors)
    await asyncio.sleep(1.5)  # let the warm-up cards go and the per-chat interval pass
    telegram.card_at.clear()

    lags: list[float] = []
    watcher = asyncio.create_task(_loop_lag(lags))
    scheduled: dict[int, float] = {}
    cpu_started = gateway_cpu_s()
    started = time.monotonic()
    tasks = []
    for k in range(total):
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[k] = started + k / rate
        tasks.append(asyncio.create_task(_call(twilio, k, agents, sids, errors)))
    offered_s = time.monotonic() - started
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + NEVER_S
    while time.monotonic() < deadline:
        if all(caller in telegram.card_at for caller in sids.values()):
            break
        await asyncio.sleep(0.05)
    cpu_used, busy_s = gateway_cpu_s() - cpu_started, time.monotonic() - started
    watcher.cancel()

    by_caller = {caller_phone(k): at for k, at in scheduled.items()}
    setup = sorted(
        (twilio.answered_at[sid] - by_caller[caller]) * 1000
        for sid, caller in sids.items()
        if sid in twilio.answered_at
    )
    lags.sort()
    latencies = []
    missing = 0
    for sid, caller in sids.items():
        answered = twilio.answered_at.get(sid)
        card = telegram.card_at.get(caller)
        if answered is None or card is None or card - answered > NEVER_S:
            missing += 1
        else:
            latencies.append((card - answered) * 1000)
    never = missing + (total - len(sids))
    ranked = sorted(latencies) + [math.inf] * never  # a card that never came ranks last
    return {
        "p50": _ms(percentile(ranked, 50)),
        "p99": _ms(percentile(ranked, 99)),
        "max": _ms(ranked[-1]) if ranked else None,
        "calls": total,
        "measured": len(latencies),
        "never": never,
        "errors": len(errors),
        "first_errors": errors[:3],
        "rate": rate,
        "offered_s": round(offered_s, 2),
        "agents": agents,
        "answers_per_s": _answer_rate(twilio.answered_at, sids),
        "call_start_to_answer_p50": round(percentile(setup, 50), 1),
        "call_start_to_answer_p99": round(percentile(setup, 99), 1),
        # From the first call to the last card: every call's whole life (webhooks, the card's
        # rendering and sending), and whatever else the gateway did meanwhile.
        "gateway_cpu_ms_per_call": round(cpu_used * 1000 / total, 1),
        "gateway_core_busy": round(cpu_used / busy_s, 2),
        "loop_lag_p50": round(percentile(lags, 50), 1),
        "loop_lag_p99": round(percentile(lags, 99), 1),
    }


def _answer_rate(answered_at: dict[str, float], sids: dict[str, str]) -> float:
    """Answers a second the gateway actually took (it falls behind the offered rate when slow)."""
    times = sorted(answered_at[sid] for sid in sids if sid in answered_at)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return round((len(times) - 1) / (times[-1] - times[0]), 1)


async def _loop_lag(lags: list[float], every: float = 0.01) -> None:
    """How late the shared event loop runs a 10 ms sleep (ms): a busy loop delays everything."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(every)
        lags.append((time.monotonic() - before - every) * 1000)


def _shown(ms: float | None) -> str:
    return f"> {NEVER_S * 1000:.0f} ms" if ms is None else f"{ms} ms"


def report(res: dict[str, Any]) -> str:
    lines = [
        f"card pop at {res['rate']:g} calls/s, {res['calls']} calls over {res['offered_s']} s, "
        f"{res['agents']} agents (one chat each)",
        f"  answered → sendMessage at the Bot API: p50 {_shown(res['p50'])}, p99 {_shown(res['p99'])}, "
        f"max {_shown(res['max'])} ({res['measured']} cards; missing ones rank last)",
        f"  scheduled call start → answer stamp (voice webhook, ringing legs): "
        f"p50 {res['call_start_to_answer_p50']} ms, p99 {res['call_start_to_answer_p99']} ms; "
        f"answers reached {res['answers_per_s']}/s",
        f"  the gateway's CPU: {res['gateway_cpu_ms_per_call']} ms per call; its core "
        f"{res['gateway_core_busy']:.0%} busy from the first call to the last card",
        f"  event-loop lag (10 ms sleeps): p50 {res['loop_lag_p50']} ms, p99 {res['loop_lag_p99']} ms",
        f"  never arrived within {NEVER_S:g} s: {res['never']}; failed calls: {res['errors']}",
        f"  Telegram limits: {res['refused_sends']} sends refused (429); paid broadcasts "
        f"{'on' if res['paid_broadcast'] else 'off'}, {res['paid_sends']} messages sent paid",
    ]
    lines += [f"    {e}" for e in res["first_errors"]]
    lines.append("  the gateway on CPU 0; the load and both fakes in one process on CPU 1 (an upper bound)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50, help="calls started per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--agents", type=int, default=50, help="agents on duty, one Telegram chat each")
    parser.add_argument(
        "--paid-broadcast",
        action="store_true",
        help="CRM_TELEGRAM_PAID_BROADCAST=true: past 30 messages a second, send paid instead of queueing",
    )
    args = parser.parse_args()
    figures = measure(args.rate, args.seconds, args.agents, paid_broadcast=args.paid_broadcast)
    print(report(asyncio.run(figures)), flush=True)


if __name__ == "__main__":
    main()
