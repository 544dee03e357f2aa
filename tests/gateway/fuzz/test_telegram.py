"""Whatever is posted to the Telegram webhook, with the right secret or not, it gets no 5xx;
refusals are JSON in the error shape. Updates shaped as Telegram's (messages, commands, shared
contacts, button presses from agents and strangers) carry odd values in every field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bots.conftest import SECRET
from tests.gateway.fuzz import strategies as gen
from tests.gateway.fuzz.world import World, fuzz

AGENT_CHAT = 1001  # Alice's, bound in the world
COMMANDS = ["/start", "/start nope", "/duty on", "/duty off", "/find Ada", "/find", "/tasks", "/report week"]


def _ids() -> st.SearchStrategy[int]:
    return gen.mostly(st.sampled_from([AGENT_CHAT, 2002, 3003]), gen.ints())


def _user(user_id: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": st.just(user_id), "is_bot": st.booleans(), "first_name": gen.mostly(gen.names(), gen.texts())},
        optional={"language_code": st.sampled_from(["en", "ru", "de", "xx", ""]), "username": gen.texts()},
    )


def _message(chat_id: int) -> st.SearchStrategy[dict[str, Any]]:
    text = gen.mostly(st.sampled_from(COMMANDS) | gen.names(), gen.texts())
    contact = st.fixed_dictionaries(
        {"phone_number": gen.mostly(gen.phones(), gen.texts()), "first_name": gen.names()},
        optional={"user_id": gen.mostly(st.just(chat_id), gen.ints())},
    )
    return st.fixed_dictionaries(
        {
            "message_id": gen.mostly(st.integers(1, 10_000), gen.ints()),
            "date": gen.mostly(st.just(1_780_000_000), gen.ints()),
            "chat": st.fixed_dictionaries(
                {"id": st.just(chat_id), "type": st.sampled_from(["private", "group", "channel"])}
            ),
            "from": _user(chat_id),
        },
        optional={"text": text, "contact": contact},
    )


def _update() -> st.SearchStrategy[dict[str, Any]]:
    def shaped(chat_id: int) -> st.SearchStrategy[dict[str, Any]]:
        callback = st.fixed_dictionaries(
            {
                "id": st.text(min_size=1, max_size=5),
                "from": _user(chat_id),
                "chat_instance": st.just("1"),
                "data": gen.mostly(st.sampled_from(["outcome:1:won", "task:1:done", "x"]), gen.texts()),
            },
            optional={"message": _message(chat_id)},
        )
        return st.fixed_dictionaries(
            {"update_id": gen.mostly(st.integers(1, 2**31 - 1), gen.ints())},
            optional={
                "message": _message(chat_id),
                "callback_query": callback,
                "edited_message": _message(chat_id),
            },
        )

    return gen.mostly(_ids().flatmap(shaped), st.dictionaries(gen.texts(), gen.any_json(), max_size=4))


# An update with none of the kinds aiogram knows (`{"update_id": 1}`) is dropped with this warning.
@pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")
@fuzz(examples=300)
@given(data=st.data())
async def test_no_update_posted_to_the_telegram_webhook_gets_a_5xx(world: World, data: st.DataObject) -> None:
    secret = data.draw(
        gen.mostly(st.just(SECRET), st.sampled_from(["", "wrong", SECRET + " ", "é"])), label="secret"
    )
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = data.draw(st.one_of(gen.json_bodies(_update()), gen.deep_json()), label="update")
    answer = await world.send("POST", "/webhooks/telegram", headers=headers, body=body)
    answer.obeys_the_contract()
