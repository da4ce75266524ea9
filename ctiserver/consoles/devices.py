"""Which dial string rings a person's phone: the agent's own device from queues.yaml, else the site's template
from cti.yaml (``agents: {device: "PJSIP/{extension}", auto_answer: true}``) with the extension typed at login.

Auto-answer: a desk phone answers by itself when the INVITE carries ``Call-Info: ...;answer-after=0``. In
Asterisk 22 ``PJSIP_HEADER(add,...)`` is written on the outgoing channel by a pre-dial handler, and AMI
Originate has none to give (its ``PreDialGoSub`` is ignored with ``Async: true``). So an auto-answer phone is
originated as ``Local/<endpoint>@cti-agent-dial/n``, whose dialplan runs ``Dial(PJSIP/<endpoint>,,
b(cti-autoanswer^s^1))`` (asterisk-config/extensions.conf). The Local channel's ``;1`` is the agent leg the
CTI bridges; ``/n`` keeps Asterisk from optimizing it away once both halves are bridged.

Pure: no I/O; the consoles' backend asks it at login, for click-to-call and for a supervisor's spy.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd import devices
from acd.config import AgentConfig

from .softphone import SoftphoneSettings, endpoint_of

AUTO_ANSWER_CONTEXT = "cti-agent-dial"  # asterisk-config/extensions.conf


class DeviceRefused(ValueError):
    """No valid dial string for this login (the extension does not fit the template)."""


@dataclass(frozen=True, slots=True)
class PhoneSettings:
    """cti.yaml ``agents:``: the site's phones. Supervisors' phones (spy) use the same template."""

    device: str = "PJSIP/{extension}"
    auto_answer: bool = False
    softphone: SoftphoneSettings | None = None  # agents whose phone is PJSIP/<endpoint> use the console's


class Phones:
    def __init__(self, settings: PhoneSettings | None = None) -> None:
        self.settings = settings or PhoneSettings()
        problem = devices.device_problem(self.settings.device)
        if problem is not None:
            raise ValueError(problem)

    def needs_extension(self, agent: AgentConfig | None) -> bool:
        """Whether the extension typed at login chooses the phone (the site's template is used)."""
        return agent is None or agent.device is None

    def agent_device(self, agent: AgentConfig, extension: str) -> str:
        """The dial string an agent's offers, transfers and click-to-calls ring."""
        device = agent.device or self._render(extension)
        if self.softphone_endpoint(agent, extension) is not None:
            return device  # the console answers by itself or on a click: no auto-answer header to add
        return self._dial(device, self.auto_answer(agent))

    def auto_answer(self, agent: AgentConfig) -> bool:
        return self.settings.auto_answer if agent.auto_answer is None else agent.auto_answer

    def softphone_endpoint(self, agent: AgentConfig, extension: str) -> str | None:
        """The endpoint the agent's console registers as, when the console is the agent's phone."""
        if self.settings.softphone is None:
            return None
        return endpoint_of(agent.device or self._render(extension))

    def supervisor_device(self, extension: str) -> str:
        return self._dial(self._render(extension), self.settings.auto_answer)

    def _render(self, extension: str) -> str:
        device = devices.render(self.settings.device, extension)
        if not devices.DIAL_STRING.fullmatch(device):
            raise DeviceRefused(f"extension {extension!r} does not make a dial string of {self.settings.device!r}")
        return device

    @staticmethod
    def _dial(device: str, auto_answer: bool) -> str:
        endpoint = devices.desk_phone(device) if auto_answer else None
        if endpoint is not None:
            return f"Local/{endpoint}@{AUTO_ANSWER_CONTEXT}/n"
        # Auto-answer asked for a phone that is no PJSIP endpoint (a mobile through the trunk, a Local
        # chain): it rings as usual.
        return devices.without_optimization(device)


def answers_at_console(agent: AgentConfig, endpoint: str) -> bool:
    """``answer: console``: the offer rings in the console and the phone is dialled only when the agent
    clicks Answer. Only a phone that picks up by itself can wait for that click."""
    return agent.answer == "console" and endpoint.startswith("Local/") and f"@{AUTO_ANSWER_CONTEXT}/" in endpoint


def label(endpoint: str) -> str:
    """The phone as a console shows it (the agent grid's extension)."""
    return devices.label(endpoint)
