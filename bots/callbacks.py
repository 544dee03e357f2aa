"""Typed callback data for the bot's buttons (aiogram `CallbackData`, at most 64 bytes each)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class OutcomeButton(CallbackData, prefix="oc"):
    call_id: int
    outcome: str


class TaskDoneButton(CallbackData, prefix="td"):
    task_id: int


class CallBackButton(CallbackData, prefix="cb"):
    client_id: int


class HandoverButton(CallbackData, prefix="ho"):
    agent_id: int
    to_agent_id: int
    confirm: bool


class LeadDetailButton(CallbackData, prefix="ld"):
    """Add a lead's unapplied phone or e-mail to its client."""

    lead_id: int
    detail: str
