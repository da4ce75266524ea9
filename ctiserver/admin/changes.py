"""An administrator's change applied to a configuration document: YAML text in, YAML text out. Pure.

The documents are read as plain data and written back with `yaml.safe_dump`: the leading comment block of a
file is kept, comments inside it are not (a YAML library that keeps them all is not a dependency we carry).
Nothing here decides whether the result is valid: the loaders the server uses at start do that, on the
text produced here, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..gateway.backend import Refused

ACCOUNT_FIELDS = ("username", "role", "password_hash", "agent_id", "extension", "display_name", "language")


class AdminRefused(Refused):
    """The change is refused; nothing was written. `reason` is a stable key, `message` one line for people
    (the gateway answers it as any refusal: error `refused` with the reason)."""


@dataclass(frozen=True, slots=True)
class Hours:
    days: str  # mon-fri, sat, sun ... as the flow files write them
    ranges: tuple[str, ...]  # "09:00-18:00"


def read_document(text: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise AdminRefused("invalid_file", f"{what} is not valid YAML now: fix it by hand first") from None
    if not isinstance(data, dict):
        raise AdminRefused("invalid_file", f"{what} is not a mapping: fix it by hand first")
    return data


def write_document(data: Mapping[str, Any], original: str) -> str:
    header = []
    for line in original.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    body = yaml.safe_dump(dict(data), allow_unicode=True, sort_keys=False, width=120)
    return "\n".join(header) + ("\n" if header else "") + body


# ------------------------------------------------------------------------------------ accounts (cti.yaml)


def accounts_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    accounts = data.get("accounts") or []
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        raise AdminRefused("invalid_file", "accounts is not a list of mappings: fix it by hand first")
    return accounts


def set_account(data: dict[str, Any], username: str, fields: Mapping[str, str | None]) -> bool:
    """Create or update one account; a field given as None is removed. True when it was created."""
    accounts = accounts_of(data)
    entry = next((a for a in accounts if a.get("username") == username), None)
    created = entry is None
    if entry is None:
        if not fields.get("password_hash"):
            raise AdminRefused("invalid_value", "a new user needs a password")
        entry = {"username": username}
        accounts.append(entry)
    for name in ACCOUNT_FIELDS[1:]:
        if name not in fields:
            continue
        value = fields[name]
        if value is None or value == "":
            entry.pop(name, None)
        else:
            entry[name] = value
    data["accounts"] = accounts
    return created


def delete_account(data: dict[str, Any], username: str) -> None:
    accounts = accounts_of(data)
    kept = [a for a in accounts if a.get("username") != username]
    if len(kept) == len(accounts):
        raise AdminRefused("not_found", f"no user {username!r}")
    data["accounts"] = kept


# ------------------------------------------------------------------------------------ the queues file


def _agents(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    agents = data.get("agents")
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        raise AdminRefused("invalid_file", "agents is not a list of mappings: fix the queues file by hand first")
    return agents


def set_agent(data: dict[str, Any], agent_id: str, name: str | None, skills: Mapping[str, int],
              queues: Sequence[str]) -> bool:
    """An agent's skills (with levels) and queues; a new agent when the id is new. True when created."""
    agents = _agents(data)
    entry = next((a for a in agents if str(a.get("id")) == agent_id), None)
    created = entry is None
    if entry is None:
        entry = {"id": agent_id, "name": name or agent_id}
        agents.append(entry)
    elif name:
        entry["name"] = name
    entry["skills"] = dict(skills)
    entry["queues"] = list(queues)
    return created


def set_pause_reasons(data: dict[str, Any], reasons: Sequence[str]) -> None:
    data["pause_reasons"] = list(reasons)


# ------------------------------------------------------------------------------------ flows: calendars


def set_calendar(data: dict[str, Any], name: str, timezone: str | None, hours: Sequence[Hours],
                 holidays: Sequence[str]) -> None:
    calendars = data.get("calendars")
    if not isinstance(calendars, dict) or not isinstance(calendars.get(name), dict):
        raise AdminRefused("not_found", f"no calendar {name!r} in this flow")
    calendar = calendars[name]
    if timezone:
        calendar["timezone"] = timezone
    calendar["hours"] = {h.days: (h.ranges[0] if len(h.ranges) == 1 else list(h.ranges)) for h in hours}
    calendar["holidays"] = sorted(set(holidays))


def calendars_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The calendars a flow file defines, as the admin page shows them."""
    out: list[dict[str, Any]] = []
    calendars = data.get("calendars")
    if not isinstance(calendars, dict):
        return out
    for name, cal in calendars.items():
        if not isinstance(cal, dict):
            continue
        hours = cal["hours"] if isinstance(cal.get("hours"), dict) else {}
        out.append({
            "name": str(name), "timezone": str(cal.get("timezone", "")),
            "hours": [{"days": str(days), "ranges": [str(r) for r in (v if isinstance(v, list) else [v])]}
                      for days, v in hours.items()],
            "holidays": sorted(str(h) for h in (cal.get("holidays") or [])),
        })
    return out
