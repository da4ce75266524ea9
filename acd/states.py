"""Agent and call state machines as transition tables.

The router only moves an agent or a call through `AGENT_TRANSITIONS` / `CALL_TRANSITIONS`;
anything else raises `IllegalTransition` (a bug in the router, never user input: agent
commands are checked against the same table first and refused). docs/acd.md draws its
diagrams from these tables with `render_mermaid` (tests/acd check it is up to date).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class AgentState(str, Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # an offer is ringing the agent's phone
    ON_CALL = "on_call"
    ON_HOLD = "on_hold"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    NOT_RESPONDING = "not_responding"  # paused by the ACD after ring-no-answer


class CallState(str, Enum):
    NEW = "new"
    WAITING = "waiting"
    CALLBACK = "callback"  # virtual caller keeping its place
    OFFERED = "offered"
    RINGING = "ringing"
    CONNECTED = "connected"
    HELD = "held"
    ENDED = "ended"


class IllegalTransition(RuntimeError):
    pass


A = AgentState
AGENT_TRANSITIONS: Mapping[tuple[AgentState, str], AgentState] = {
    (A.LOGGED_OUT, "login"): A.AVAILABLE,
    (A.AVAILABLE, "offer"): A.RESERVED,
    (A.AVAILABLE, "pause"): A.PAUSED,
    (A.AVAILABLE, "logout"): A.LOGGED_OUT,
    (A.AVAILABLE, "dial_out"): A.ON_CALL,  # click-to-call, a callback dialled agent first
    (A.RESERVED, "answer"): A.ON_CALL,
    (A.RESERVED, "ring_no_answer"): A.NOT_RESPONDING,
    (A.RESERVED, "offer_cancelled"): A.AVAILABLE,
    (A.RESERVED, "pause"): A.RESERVED,  # deferred to after wrap-up
    (A.RESERVED, "logout"): A.LOGGED_OUT,  # the offer is cancelled, the caller goes back first in line
    (A.RESERVED, "cancelled"): A.AVAILABLE,  # the CTI or the PBX withdrew the offer: not the agent's fault
    (A.ON_CALL, "hold"): A.ON_HOLD,
    (A.ON_CALL, "consult_released"): A.AVAILABLE,  # consulted by a colleague who kept the caller
    (A.ON_CALL, "call_end"): A.WRAP_UP,
    (A.ON_CALL, "pause"): A.ON_CALL,  # deferred
    (A.ON_HOLD, "unhold"): A.ON_CALL,
    (A.ON_HOLD, "call_end"): A.WRAP_UP,
    (A.ON_HOLD, "pause"): A.ON_HOLD,  # deferred
    (A.WRAP_UP, "wrap_up_done"): A.AVAILABLE,
    (A.WRAP_UP, "wrap_up_done_pause_pending"): A.PAUSED,
    (A.WRAP_UP, "ready"): A.AVAILABLE,
    (A.WRAP_UP, "pause"): A.WRAP_UP,  # deferred
    (A.WRAP_UP, "logout"): A.LOGGED_OUT,
    (A.PAUSED, "ready"): A.AVAILABLE,
    (A.PAUSED, "pause"): A.PAUSED,  # new reason code
    (A.PAUSED, "logout"): A.LOGGED_OUT,
    (A.PAUSED, "dial_out"): A.ON_CALL,  # the pause comes back after the wrap-up
    (A.NOT_RESPONDING, "ready"): A.AVAILABLE,
    (A.NOT_RESPONDING, "pause"): A.PAUSED,
    (A.NOT_RESPONDING, "logout"): A.LOGGED_OUT,
    (A.NOT_RESPONDING, "dial_out"): A.ON_CALL,
}

C = CallState
CALL_TRANSITIONS: Mapping[tuple[CallState, str], CallState] = {
    (C.NEW, "enqueue"): C.WAITING,
    (C.WAITING, "offer"): C.OFFERED,
    (C.WAITING, "callback_requested"): C.CALLBACK,
    (C.WAITING, "leave"): C.ENDED,  # abandoned, timeout, voicemail, moved to another queue
    (C.CALLBACK, "offer"): C.OFFERED,
    (C.CALLBACK, "leave"): C.ENDED,
    (C.OFFERED, "ringing"): C.RINGING,
    (C.OFFERED, "answer"): C.CONNECTED,
    (C.OFFERED, "requeue_head"): C.WAITING,
    (C.OFFERED, "requeue_head_callback"): C.CALLBACK,
    (C.OFFERED, "leave"): C.ENDED,
    (C.RINGING, "answer"): C.CONNECTED,
    (C.RINGING, "requeue_head"): C.WAITING,
    (C.RINGING, "requeue_head_callback"): C.CALLBACK,
    (C.RINGING, "leave"): C.ENDED,
    (C.CONNECTED, "hold"): C.HELD,
    (C.CONNECTED, "end"): C.ENDED,
    (C.CONNECTED, "transfer"): C.OFFERED,  # blind transfer to an agent: rings them
    (C.CONNECTED, "transfer_queue"): C.WAITING,
    (C.CONNECTED, "consult_done"): C.CONNECTED,  # the consulted agent has the caller now
    (C.HELD, "unhold"): C.CONNECTED,
    (C.HELD, "end"): C.ENDED,
    (C.HELD, "transfer"): C.OFFERED,
    (C.HELD, "transfer_queue"): C.WAITING,
    (C.HELD, "consult_done"): C.CONNECTED,
}


def agent_next(state: AgentState, trigger: str) -> AgentState:
    try:
        return AGENT_TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"agent cannot {trigger} while {state.value}") from None


def call_next(state: CallState, trigger: str) -> CallState:
    try:
        return CALL_TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"call cannot {trigger} while {state.value}") from None


def render_mermaid(table: Mapping[tuple[AgentState, str], AgentState] | Mapping[tuple[CallState, str], CallState]) -> str:
    """A mermaid stateDiagram of a transition table; self-loops are listed as deferred/notes."""
    lines = ["```mermaid", "stateDiagram-v2"]
    edges: dict[tuple[str, str], list[str]] = {}
    for (src, trigger), dst in table.items():
        edges.setdefault((src.value, dst.value), []).append(trigger)
    for (src_name, dst_name), triggers in edges.items():
        lines.append(f"    {src_name} --> {dst_name}: {', '.join(triggers)}")
    lines.append("```")
    return "\n".join(lines)


def render_state_docs() -> str:
    """The generated section of docs/acd.md."""
    return "\n".join([
        "### Agent states", "", render_mermaid(AGENT_TRANSITIONS), "",
        "### Call states", "", render_mermaid(CALL_TRANSITIONS), "",
    ])


STATES_BEGIN = "<!-- states:begin (generated by acd.states.render_state_docs) -->"
STATES_END = "<!-- states:end -->"


def update_doc(text: str) -> str:
    """Replace the generated section of docs/acd.md with the current tables."""
    head, rest = text.split(STATES_BEGIN, 1)
    _, tail = rest.split(STATES_END, 1)
    return f"{head}{STATES_BEGIN}\n{render_state_docs()}{STATES_END}{tail}"


if __name__ == "__main__":  # python -m acd.states docs/acd.md
    import sys
    from pathlib import Path

    doc = Path(sys.argv[1])
    doc.write_text(update_doc(doc.read_text(encoding="utf-8")), encoding="utf-8")
