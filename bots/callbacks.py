"""Typed callback data for the bot's buttons (aiogram `CallbackData`, at most 64 bytes each).

A button's data comes back from the user's Telegram app and can be forged: ids are held to what the
store can hold, so a forged one matches no handler instead of failing in the database.
"""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from crm.domain.paging import MAX_ID

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class OutcomeButton(CallbackData, prefix="oc"):
    call_id: Id
    outcome: str


class TaskDoneButton(CallbackData, prefix="td"):
    task_id: Id


class CallBackButton(CallbackData, prefix="cb"):
    client_id: Id


class HandoverButton(CallbackData, prefix="ho"):
    agent_id: Id
    to_agent_id: Id
    confirm: bool


class LeadDetailButton(CallbackData, prefix="ld"):
    """Add a lead's unapplied phone or e-mail to its client."""

    lead_id: Id
    detail: str
