"""How fast the outbox sender delivers to Telegram while keeping Telegram's limits.

Runs the gateway's real sender against the local Bot API server of the tests, in its strict mode
(it answers 429 to more than 30 messages a second overall or more than one a second per chat),
and prints the delivery rate and how many sends Telegram would have refused.

    .venv/bin/python -m bench.telegram_send_rate [--chats 100] [--per-chat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from crm.delivery import outbox
from crm.service import Crm
from crm.services import notices
from crm.storage.store import Store
from gateway.app import create_app
from gateway.keys import CRM, STORE
from gateway.settings import Settings
from tests.fakes.bot_api import BotApiServer


async def run(chats: int, per_chat: int) -> None:
    from aiohttp.test_utils import TestServer

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url)
        await store.upgrade()
        await store.close()
        async with BotApiServer(enforce_limits=True) as telegram:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                database_url=url,
                telegram_bot_token=telegram.token,
                telegram_api_url=telegram.url,
            )
            server = TestServer(create_app(settings))
            await server.start_server()
            try:
                app = server.app
                st: Store = app[STORE]
                crm: Crm = app[CRM]
                async with st.session() as s:
                    agents = []
                    for i in range(chats):
                        agent = await crm.agents.add(s, f"Agent {i}", phone=f"+1415555{1000 + i}")
                        await crm.agents.bind_chat(
                            s, agent.invite_code or "", chat_id=9000 + i, user_id=9000 + i
                        )
                        agents.append(agent.id)
                started = time.monotonic()
                async with st.session() as s:
                    for n in range(per_chat):
                        for agent_id in agents:
                            await outbox.enqueue(
                                s,
                                notices.CHANNEL,
                                "text",
                                {"agent_id": agent_id, "text": f"m{n}"},
                                queue=f"agent:{agent_id}",
                                clock=crm.clock,
                            )
                for i in range(chats):
                    for _ in range(per_chat):
                        await telegram.next_message(9000 + i, timeout=120)
                elapsed = time.monotonic() - started
            finally:
                await server.close()
            total = chats * per_chat
            refused = sum(1 for c in telegram.history if c.method == "sendMessage" and c.status == 429)
            print(
                f"delivered {total} messages to {chats} chats in {elapsed:.2f} s: "
                f"{total / elapsed:.1f} msg/s; refused by the strict Bot API server: {refused}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--per-chat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.chats, args.per_chat))


if __name__ == "__main__":
    main()
