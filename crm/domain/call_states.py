"""A call's states and the moves allowed between them: forward only, a table not `if`s.

ringing ──► in_progress ──► completed
   └──────► completed | missed | busy | failed      (terminal: nothing moves them)

The statuses are listed here once (`CallStatus`); everything else names them through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from crm.domain.call_events import Outcome

CallStatus = Literal["ringing", "in_progress", "completed", "missed", "busy", "failed"]
STATUSES: tuple[CallStatus, ...] = get_args(CallStatus)

TRANSITIONS: Mapping[str, frozenset[CallStatus]] = {
    "ringing": frozenset({"in_progress", "completed", "missed", "busy", "failed"}),
    "in_progress": frozenset({"completed"}),
    "completed": frozenset(),
    "missed": frozenset(),
    "busy": frozenset(),
    "failed": frozenset(),
}
TERMINAL = frozenset(s for s in STATUSES if not TRANSITIONS[s])
UNANSWERED: frozenset[CallStatus] = frozenset({"missed", "busy", "failed"})

# How a call or its ringing ended without an answer → the call's status when nobody took it.
UNANSWERED_STATUS: Mapping[Outcome, CallStatus] = {
    "no_answer": "missed",
    "canceled": "missed",
    "busy": "busy",
    "failed": "failed",
}


def can_move(current: str, to: CallStatus) -> bool:
    return to in TRANSITIONS[current]
