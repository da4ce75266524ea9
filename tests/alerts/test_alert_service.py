"""The alert timer on a real journal (SQLite): each look judges every queue, a share of the agents (each at
least every AGENT_SWEEP_S) and every agent with an alert in force; what it raises or clears is recorded."""

from __future__ import annotations

from pathlib import Path

from acd import events as ev
from acd.config import parse_config
from crmstore.store import open_store
from ctiserver.alerts.service import AGENT_SWEEP_S, AlertService
from ctiserver.journal import facts as f
from ctiserver.journal.journal import Journal
from ctiserver.projections.projector import Projector
from ctiserver.projections.recorder import Recorder

AGENTS = 20
QUEUES = f"""\
skills: [sales]
pause_reasons: [break]
agent_targets: {{long_pause_s: 30}}
queues:
  - {{name: sales, skills: {{sales: 1}}}}
agents:
{"".join(f'  - {{id: "a{i}", skills: {{sales: 1}}, queues: [sales], device: PJSIP/{100 + i}}}{chr(10)}' for i in range(AGENTS))}"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_every_agent_is_looked_at_within_the_sweep_and_an_alert_clears_at_the_next_look(
        tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        clock = Clock()
        journal = Journal(store, clock)
        recorder = Recorder(journal, Projector(parse_config(QUEUES, "queues.yaml")), lambda: ("queues.yaml", QUEUES))
        service = AlertService(recorder, clock, every_s=1.0)
        for i in range(AGENTS):
            recorder.record(ev.AgentLoggedIn(f"a{i}"))
            recorder.record(ev.AgentPaused(f"a{i}", "break"))
        clock.now += 31  # every agent is past the 30 s target now
        raised: list[str] = []
        looks = 0
        while len(raised) < AGENTS:
            looks += 1
            assert looks <= AGENT_SWEEP_S, f"after {looks} looks only {sorted(raised)}"
            changes = service.check()
            assert 0 < len(changes) < AGENTS  # a share at a time
            raised += [c.agent_id for c in changes if isinstance(c, f.AlertRaised)]
            clock.now += 1
        assert sorted(raised) == sorted(f"a{i}" for i in range(AGENTS))
        assert service.check() == []  # raised once each
        recorder.record(ev.AgentReady("a7"))
        assert service.check() == [f.AlertCleared("long_pause", "", "a7")]  # an agent with an alert: every look
        await journal.flush()
        assert journal.durable_seq == journal.last_seq
        assert set(recorder.projector.alerts) == {f"long_pause||a{i}" for i in range(AGENTS) if i != 7}
    finally:
        await store.close()
