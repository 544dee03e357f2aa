"""The Bot API session: aiogram's aiohttp session, keeping the answer models it builds.

aiogram validates every answer as `Response[<the method's result type>]`. pydantic keeps a
parametrized generic model only while something refers to it, so without a reference each answer
built that model's validator again (about 0.15 ms, and more with the garbage collector's help),
a large share of a card's cost. This session keeps one per result type it has seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod


class BotApiSession(AiohttpSession):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answer_models: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._answer_models:
            self._answer_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
