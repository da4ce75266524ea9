"""Errors raised by the AMI link to the callers of actions (control, resync, ACD service)."""

from __future__ import annotations

from .protocol import Message


class AmiError(Exception):
    """Base of every error the AMI link raises to a caller."""


class LinkDown(AmiError):
    """The link is not logged in, or it dropped while the action was pending (the action may or may not
    have run on the PBX: the resync after reconnect tells the truth)."""


class AmiAuthError(AmiError):
    """Asterisk refused the credentials (``Response: Error`` / ``Message: Authentication failed``, capture 01
    AMI2). Terminal: the link stops retrying, because the same secret will be refused again."""


class ActionTimeout(AmiError, TimeoutError):
    """No response (or no completion event) for an action in time. A late response is dropped."""

    def __init__(self, action: str, action_id: str, timeout: float | None) -> None:
        super().__init__(f"AMI action {action} ({action_id}): no response within {timeout} s")
        self.action = action
        self.action_id = action_id
        self.timeout = timeout


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``; ``message`` is its ``Message`` header."""

    def __init__(self, action: str, response: Message) -> None:
        self.action = action
        self.response = response
        self.message = response.get("Message", "")
        super().__init__(f"AMI action {action} failed: {self.message or '(no message)'}")
