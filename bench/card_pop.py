"""Card pop: how long from an agent answering a call to the card's request reaching Telegram.

Runs the gateway in-process (SQLite file, its real outbox sender) against the fakes of the tests,
which are real HTTP servers on loopback: `tests.fakes.twilio.TwilioSimulator` places inbound calls
and answers them, `tests.fakes.bot_api.BotApiServer` is the Bot API. Every call comes from its own
number, a client owned by one of `--agents` agents (each on duty, each with their own Telegram
chat), so it rings that agent alone. Calls start at `--rate` a second for `--seconds` seconds.

    .venv/bin/python -m bench.card_pop [--rate 50] [--seconds 10] [--agents 50]

The answer moment is when the simulator starts the first request that tells the gateway who
answered: the answering leg's `in-progress` status callback, or the screening URL
(`/webhooks/twilio/answered`), whichever it sends first (it sends the status callback first). The
arrival moment is when the Bot API server handles a `sendMessage` whose text has "Call from" and
the caller's number (after reading the request's body). Both clocks are `time.monotonic()` of
one process: the load generator, the gateway and both fakes share one event loop, so the figures
are an upper bound of what the gateway alone would do.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from crm.service import Crm
from crm.store import Store
from gateway.app import create_app
from gateway.keys import CRM, STORE
from gateway.settings import Settings
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


async def measure(rate: float = 50, seconds: float = 10, agents: int = 50, warmup: int = 3) -> dict[str, Any]:
    total = round(rate * seconds)
    if total + warmup > 8000 or agents > 8000:
        raise ValueError("at most 8000 calls and 8000 agents (numbers +1628555XXXX / +1415555XXXX)")
    with tempfile.TemporaryDirectory(prefix="crm-card-pop-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'card-pop.db'}"
        store = Store(url)
        await store.upgrade()
        await store.close()
        async with StampingBotApi() as telegram:
            settings = _settings(url, telegram)
            server = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
            await server.start_server()
            try:
                app = server.app
                await _populate(app[STORE], app[CRM], agents, total + warmup)
                async with StampingTwilio(
                    base_url=settings.public_url,
                    account_sid=DEFAULT_ACCOUNT_SID,
                    auth_token=DEFAULT_AUTH_TOKEN,
                ) as twilio:
                    return await _drive(twilio, telegram, rate, total, agents, warmup)
            finally:
                await server.close()


def _settings(url: str, telegram: BotApiServer) -> Settings:
    # TestServer picks its port when it starts; the public URL must be known before, so reserve one.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return Settings(
        _env_file=None,
        database_url=url,
        telegram_bot_token=telegram.token,
        telegram_api_url=telegram.url,
        twilio_account_sid=DEFAULT_ACCOUNT_SID,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
        public_url=f"http://127.0.0.1:{port}",
        port=port,
    )


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
    twilio: StampingTwilio, telegram: StampingBotApi, rate: float, total: int, agents: int, warmup: int
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
        f"  event-loop lag (10 ms sleeps): p50 {res['loop_lag_p50']} ms, p99 {res['loop_lag_p99']} ms",
        f"  never arrived within {NEVER_S:g} s: {res['never']}; failed calls: {res['errors']}",
    ]
    lines += [f"    {e}" for e in res["first_errors"]]
    lines.append(
        "  one process, one event loop: the load generator and both fakes share the gateway's loop;"
        " the figures are an upper bound"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50, help="calls started per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--agents", type=int, default=50, help="agents on duty, one Telegram chat each")
    args = parser.parse_args()
    print(report(asyncio.run(measure(args.rate, args.seconds, args.agents))), flush=True)


if __name__ == "__main__":
    main()
