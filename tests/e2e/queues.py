"""The ACD configuration of the end-to-end tests: the demo's queue names (the demo flow routes to them),
two agents, and timers small enough for a fast suite.

Times are the ACD's (real seconds), except ``ring_timeout_s``: it becomes the Originate's ``Timeout``, which
the simulator counts in virtual seconds (scaled by ``time_scale``), so 10 rings for 0.5 s at 0.05.
"""

from __future__ import annotations

TEST_QUEUES = """\
priority_aging_per_s: 1.0
skills: [sales, support, complaints, english]
pause_reasons: [break, lunch]
queues:
  - {name: vip, skills: {support: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4}
  - {name: sales, skills: {sales: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4}
  - {name: support, skills: {support: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4,
     short_abandon_s: 0.05}
  - {name: complaints, skills: {complaints: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4}
  - {name: general, skills: {english: 1}, ring_timeout_s: 10, wrap_up_s: 30, announce_every_s: 0.4}
agents:
  - {id: "1001", name: Wang Fang, skills: {sales: 5, support: 5, complaints: 5, english: 5},
     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/1001}
  - {id: "1002", name: Alice Smith, skills: {sales: 5, support: 5, complaints: 5, english: 5},
     queues: [vip, sales, support, complaints, general], endpoint: PJSIP/1002}
"""
