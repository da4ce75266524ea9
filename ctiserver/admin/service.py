"""The administration service: one change at a time, validated, written, applied, journaled and audited.

The order of every change: read the file as it is now; apply the change to its data (`changes`); run the
result through the loader the server uses at start (`acd.config.parse_config`, `ctiserver.config.load_config`
with `Accounts.from_config`, the flow loader and validator) so a bad change is refused in one line with the
file untouched; replace the file atomically (`files.replace_checked`); put it in force in the running server;
journal an `admin.changed` fact whose audit row commits in the same batch, and answer once it is durable.

Who owns what, once in force:
* the queues file: the projector, through the journaled `system.acd_config` fact (the router, statistics
  and reports follow it; a replay meets the change at the same place);
* accounts: the gateway's account table (replaced whole); the sessions of a removed account, of a changed
  role or of a changed password (another user's) end at once;
* calendars: the flow registry (the changed flow file is reloaded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from acd.config import AcdConfig, parse_config
from acd.errors import AcdConfigError
from crmstore import queries as Q
from crmstore.privacy import Role as CrmRole
from crmstore.privacy import Viewer
from crmstore.store import CrmStore
from ivr_flows.registry import FlowRegistry
from ivr_flows.validator import load_checked

from ..config import ConfigError, load_config
from ..gateway.auth import AccountConfigError, Accounts, Principal, Role, hash_password
from ..gateway.server import Gateway
from ..journal import facts as f
from ..projections.recorder import Recorder
from . import changes as c
from .changes import AdminRefused
from .files import replace_checked

T = TypeVar("T")

log = logging.getLogger(__name__)

_SAVE_TIMEOUT_S = 3.0
MIN_PASSWORD = 8
ADMIN_AUDIT_PREFIX = "admin:"


@dataclass(frozen=True, slots=True)
class AdminFiles:
    """The files the administration page may change; None: that part is read-only on this server."""

    accounts_file: Path | None = None  # cti.yaml (its `accounts:` list)
    queues_file: Path | None = None  # the ACD's queues file


class AdminService:
    def __init__(self, files: AdminFiles, recorder: Recorder, flows: FlowRegistry, crm: CrmStore,
                 gateway: Callable[[], Gateway], clock: Callable[[], float]) -> None:
        self.files = files
        self.recorder = recorder
        self.flows = flows
        self.crm = crm
        self.gateway = gateway
        self.clock = clock
        self._one_at_a_time = asyncio.Lock()
        self._commands: dict[str, Callable[[Principal, Mapping[str, Any]], Any]] = {
            "admin_overview": self.overview, "admin_user_set": self.set_user,
            "admin_user_delete": self.delete_user, "admin_agent_set": self.set_agent,
            "admin_pause_reasons_set": self.set_pause_reasons, "admin_calendar_set": self.set_calendar,
            "admin_audit": self.audit,
        }

    @property
    def config(self) -> AcdConfig:
        return self.recorder.projector.config

    async def handle(self, who: Principal, command: str, args: Mapping[str, Any]) -> object:
        """The gateway's entry point (it has checked the role): AdminRefused becomes a `refused` error."""
        if who.role is not Role.ADMIN:  # the gateway's role table says so too: a second wall
            raise AdminRefused("forbidden", "administration is for the admin role")
        run = self._commands[command]
        if command in ("admin_overview", "admin_audit"):
            return await run(who, args)
        async with self._one_at_a_time:
            return await run(who, args)

    # ------------------------------------------------------------------ reading

    async def overview(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        cfg = self.config
        accounts = self.gateway().accounts
        users = [{"username": a.username, "role": str(a.role), "agent_id": a.agent_id, "extension": a.extension,
                  "display_name": a.display_name, "language": a.language} for a in accounts.all()]
        calendars = []
        for path in self.flows.files():
            try:
                data = c.read_document(path.read_text(encoding="utf-8"), path.name)
            except (OSError, AdminRefused):
                continue
            for cal in c.calendars_of(data):
                calendars.append({"flow": str(data.get("flow", path.stem)), **cal})
        return {
            "users": users,
            "skills": list(cfg.skills),
            "queues": [{"name": q.name, "skills": dict(q.skills)} for q in cfg.queues],
            "agents": [{"id": a.id, "name": a.name, "skills": dict(a.skills), "queues": list(a.queues)}
                       for a in cfg.agents],
            "pause_reasons": list(cfg.pause_reasons),
            "calendars": calendars,
            "editable": {"accounts": self.files.accounts_file is not None,
                         "queues": self.files.queues_file is not None, "calendars": True},
        }

    async def audit(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        def when(name: str) -> datetime | None:
            text = args.get(name)
            if not text:
                return None
            try:
                moment = datetime.fromisoformat(str(text))
            except ValueError:
                raise AdminRefused("invalid_value", f"{name}: not a date such as 2026-11-28") from None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

        entries = await self.crm.audit_log(Viewer(who.username, CrmRole.ADMIN), actor=args.get("actor") or None,
                                           action=args.get("action") or None, since=when("since"),
                                           until=when("until"), limit=int(args.get("limit", 200)))
        return {"entries": [{"id": e.id, "at": e.at.timestamp(), "actor": e.actor, "role": e.role,
                             "action": e.action, "customer_id": e.customer_id, "detail": e.detail}
                            for e in entries]}

    # ------------------------------------------------------------------ accounts

    def _accounts_file(self) -> Path:
        if self.files.accounts_file is None:
            raise AdminRefused("not_configured", "this server was not started from a cti.yaml: accounts are read-only")
        return self.files.accounts_file

    async def set_user(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        path = self._accounts_file()
        username = str(args["username"])
        role = str(args["role"])
        existing = self.gateway().accounts.get(username)
        if username == who.username and role != str(who.role):
            raise AdminRefused("invalid_value", "you cannot change your own role")
        fields: dict[str, str | None] = {"role": role}
        for name in ("display_name", "agent_id", "extension", "language"):
            if name in args:
                fields[name] = str(args[name])
        password = args.get("password")
        if password is not None and len(str(password)) < MIN_PASSWORD:
            raise AdminRefused("invalid_value", f"a password has at least {MIN_PASSWORD} characters")
        if password is not None:
            fields["password_hash"] = await asyncio.to_thread(hash_password, str(password))
        if role != "agent" and "agent_id" not in args:
            fields["agent_id"] = None  # a supervisor or an admin is no ACD agent
        text, data = self._read(path)
        created = c.set_account(data, username, fields)
        accounts = self._write_accounts(path, text, data)
        ends = existing is not None and username != who.username and (
            password is not None or str(existing.role) != role)
        if ends:
            await self.gateway().end_user_sessions(username, "account changed by an administrator")
        what = "created" if created else "updated"
        detail = f"{what}, role {role}" + (", password set" if password is not None else "")
        await self._journal(who, "user_set", username, detail)
        log.info("admin %s: user %s %s", who.username, username, what)
        return {"created": created, "users": len(accounts)}

    async def delete_user(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        path = self._accounts_file()
        username = str(args["username"])
        if username == who.username:
            raise AdminRefused("invalid_value", "you cannot delete your own account")
        text, data = self._read(path)
        c.delete_account(data, username)
        self._write_accounts(path, text, data)
        await self.gateway().end_user_sessions(username, "account removed by an administrator")
        await self._journal(who, "user_delete", username, "deleted")
        return {"deleted": username}

    def _write_accounts(self, path: Path, text: str, data: dict[str, Any]) -> Accounts:
        entries = c.accounts_of(data)
        try:
            accounts = Accounts.from_config(entries, "accounts")
        except AccountConfigError as e:
            raise AdminRefused("invalid_value", str(e)) from None
        if not any(a.role is Role.ADMIN for a in accounts.all()):
            raise AdminRefused("invalid_value", "at least one admin account must remain")

        def check(tmp: Path) -> None:
            try:
                load_config(tmp)
            except ConfigError as e:
                raise AdminRefused("invalid_value", e.errors[0] if e.errors else str(e)) from None

        _replace(path, c.write_document(data, text), check)
        self.gateway().accounts = accounts
        return accounts

    # ------------------------------------------------------------------ the queues file

    def _queues_file(self) -> Path:
        if self.files.queues_file is None:
            raise AdminRefused("not_configured", "this server has no queues file to write: read-only")
        return self.files.queues_file

    async def set_agent(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        agent_id = str(args["agent_id"])
        skills = {str(s["skill"]): int(s["level"]) for s in cast(Sequence[Mapping[str, Any]], args["skills"])}
        queues = [str(q) for q in args["queues"]]
        name = str(args["name"]) if args.get("name") else None
        created = await self._change_queues(lambda data: c.set_agent(data, agent_id, name, skills, queues))
        detail = ("created; " if created else "") + "skills " + ", ".join(f"{k}={v}" for k, v in skills.items()) + \
            "; queues " + ", ".join(queues)
        await self._journal(who, "agent_set", agent_id, detail)
        return {"created": bool(created)}

    async def set_pause_reasons(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        reasons = [str(r) for r in args["reasons"]]
        await self._change_queues(lambda data: c.set_pause_reasons(data, reasons))
        await self._journal(who, "pause_reasons_set", "pause_reasons", ", ".join(reasons))
        return {"pause_reasons": reasons}

    async def _change_queues(self, change: Callable[[dict[str, Any]], object]) -> object:
        path = self._queues_file()
        text, data = self._read(path)
        result = change(data)
        new_text = c.write_document(data, text)
        source = str(path)
        try:
            parse_config(new_text, source)  # the start's loader: every problem, "a queue nobody can serve" too
        except AcdConfigError as e:
            first = e.issues[0]
            scope = f"queue {first.queue}: " if first.queue else ""
            # The one refusal consoles word themselves (with the queue's name): the rest are shown as they are.
            reason = "queue_unserved" if first.queue and first.field == "skills" and "serve" in first.message \
                else "invalid_value"
            raise AdminRefused(reason, f"{scope}{first.field}: {first.message}") from None
        _replace(path, new_text, lambda tmp: None)
        # In force from this fact on: the projector rebuilds the router under the new rules, keeping
        # the agents' sessions and the callers' places; a replay meets it at the same point.
        self.recorder.record(f.AcdConfigLoaded(source, new_text))
        return result

    # ------------------------------------------------------------------ calendars (flow files)

    async def set_calendar(self, who: Principal, args: Mapping[str, Any]) -> dict[str, object]:
        flow, name = str(args["flow"]), str(args["calendar"])
        path = self._flow_file(flow)
        hours = [c.Hours(str(h["days"]), tuple(str(r) for r in h["ranges"]))
                 for h in cast(Sequence[Mapping[str, Any]], args["hours"])]
        holidays = [str(d) for d in args.get("holidays", [])]
        text, data = self._read(path)
        c.set_calendar(data, name, cast(str | None, args.get("timezone")), hours, holidays)

        def check(tmp: Path) -> None:
            loaded, errors = load_checked(tmp, self.flows.catalog)
            if errors or loaded is None:
                why = errors[0].message if errors else "the flow does not load"
                raise AdminRefused("invalid_value", why)

        _replace(path, c.write_document(data, text), check)
        self.flows.load_file(path)  # in force for the next caller (the watcher would find it too)
        detail = "; ".join(f"{h.days} {','.join(h.ranges)}" for h in hours) + \
            (f"; holidays {', '.join(sorted(set(holidays)))}" if holidays else "")
        await self._journal(who, "calendar_set", f"{flow}/{name}", detail)
        return {"flow": flow, "calendar": name}

    def _flow_file(self, flow: str) -> Path:
        for path in self.flows.files():
            try:
                data = c.read_document(path.read_text(encoding="utf-8"), path.name)
            except (OSError, AdminRefused):
                continue
            if str(data.get("flow", path.stem)) == flow:
                return path
        raise AdminRefused("not_found", f"no flow {flow!r}")

    # ------------------------------------------------------------------ shared

    @staticmethod
    def _read(path: Path) -> tuple[str, dict[str, Any]]:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise AdminRefused("unavailable", f"cannot read {path.name}: {e.strerror or e}") from None
        return text, c.read_document(text, path.name)

    async def _journal(self, who: Principal, action: str, target: str, detail: str) -> None:
        """The change as a fact, its audit row in the same transaction; answered once durable."""
        self.recorder.record(f.AdminChanged(who.username, action, target, detail))
        seq = self.recorder.journal.last_seq
        row = Q.audit_row(Viewer(who.username, CrmRole.ADMIN), ADMIN_AUDIT_PREFIX + action, None,
                          f"{target}: {detail}")
        self.recorder.journal.write_also(("admin_audit", seq), partial(Q.write_audit, [row]))
        try:
            await self.recorder.journal.durable(seq, timeout=_SAVE_TIMEOUT_S)
        except TimeoutError:
            # The file is written and in force; the fact and its audit row are kept and written as soon as
            # the database answers.
            log.warning("admin change %s %s in force, its journal entry not yet durable", action, target)


def _replace(path: Path, text: str, check: Callable[[Path], T]) -> T:
    """The file replaced whole; a file system that refuses (permissions, a full disk) is one line, and the
    file stays as it was."""
    try:
        return replace_checked(path, text, check)
    except OSError as e:
        raise AdminRefused("unavailable", f"cannot write {path.name}: {e.strerror or e}") from None
