"""A call's states and the moves allowed between them: forward only, a table not `if`s.

ringing ──► in_progress ──► completed
   └──────► completed | missed | busy | failed      (terminal: nothing moves them)
"""

from __future__ import annotations

TRANSITIONS: dict[str, frozenset[str]] = {
    "ringing": frozenset({"in_progress", "completed", "missed", "busy", "failed"}),
    "in_progress": frozenset({"completed"}),
    "completed": frozenset(),
    "missed": frozenset(),
    "busy": frozenset(),
    "failed": frozenset(),
}
TERMINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)
UNANSWERED = frozenset({"missed", "busy", "failed"})

# What became of the ringing of agents → the call's status when nobody took it.
UNANSWERED_STATUS = {"no_answer": "missed", "canceled": "missed", "busy": "busy", "failed": "failed"}


def can_move(current: str, to: str) -> bool:
    return to in TRANSITIONS[current]
