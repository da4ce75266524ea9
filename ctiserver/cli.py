"""The `ctiserver` command: demo, run, flows check, crm import/export, hash-password."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
EXIT_AUTH = 3


def _logging(verbose: bool) -> None:
    from .gateway.server import redact_logs

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # At debug level websockets prints every frame, the console's password and tokens included.
    redact_logs(logging.getLogger().handlers)


async def _until_signal(main: asyncio.Future[Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({main, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if main not in done:
        main.cancel()
    waiter.cancel()
    try:
        await main
    except asyncio.CancelledError:
        pass


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.runner import DemoOptions, run_demo

    _logging(args.verbose)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    options = DemoOptions(data_dir=Path(args.data_dir), http_port=args.http_port, agi_port=args.agi_port,
                          calls_per_minute=args.calls_per_minute, duration_s=args.duration)

    async def main() -> None:
        await _until_signal(asyncio.ensure_future(run_demo(options)))

    asyncio.run(main())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from acd.config import AcdConfigError
    from acd.config import load_config as load_acd

    from .ami.errors import AmiAuthError
    from .app import CtiServer, PbxSettings, ServerSettings
    from .config import ConfigError, load_config

    _logging(args.verbose)
    try:
        cfg = load_config(args.config)
        acd = load_acd(cfg.queues_file)
    except (ConfigError, AcdConfigError) as e:
        print(f"ctiserver: configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    settings = ServerSettings(
        pbxes=tuple(PbxSettings(p.name, p.host, p.port, p.username, p.secret) for p in cfg.pbxes),
        acd=acd, database_url=cfg.database_url, flows_dir=cfg.flows_dir, accounts=cfg.accounts,
        agi_host=cfg.agi.host, agi_port=cfg.agi.port, http_host=cfg.http.host, http_port=cfg.http.port,
        agi_allow=cfg.agi_allow,
        default_country=cfg.default_country, flow_by_did=cfg.flow_by_did, default_flow=cfg.default_flow,
        recordings_dir=cfg.recordings_dir, speech_models=cfg.speech_models,
        token_secret=cfg.token_secret.encode(), token_ttl_s=cfg.token_ttl_s,
        queue_log=cfg.path.parent / "queue_log", prompts_dir=cfg.prompts_dir,
    )

    async def main() -> int:
        server = CtiServer(settings)
        await server.start()
        try:
            await _until_signal(asyncio.ensure_future(server.calls.pool.run()))
        except AmiAuthError as e:
            print(f"ctiserver: AMI login refused: {e}", file=sys.stderr)
            return EXIT_AUTH
        finally:
            await server.stop()
        return 0

    return asyncio.run(main())


def cmd_flows_check(args: argparse.Namespace) -> int:
    from ivr_flows.validator import FlowCatalog, check_files

    queues = skills = None
    if args.queues:
        from acd.config import AcdConfigError
        from acd.config import load_config as load_acd

        try:
            acd = load_acd(args.queues)
        except AcdConfigError as e:
            print(f"{e}", file=sys.stderr)
            return EXIT_CONFIG
        queues = frozenset(q.name for q in acd.queues)
        skills = frozenset(acd.skills)
    catalog = FlowCatalog(prompt_dirs=tuple(Path(p) for p in args.prompts), queues=queues, skills=skills)
    errors = check_files([Path(f) for f in args.files], catalog)
    for error in errors:
        print(error)
    if not errors:
        print(f"{len(args.files)} flow file(s) OK")
    return 1 if errors else 0


def cmd_crm_import(args: argparse.Namespace) -> int:
    from crmstore.errors import ImportFormatError
    from crmstore.import_export import import_file
    from crmstore.store import open_store

    async def main() -> int:
        store = await open_store(args.db, default_country=args.country)
        try:
            report = await import_file(store, Path(args.file), default_country=args.country)
        except ImportFormatError as e:
            print(f"ctiserver crm import: {e}", file=sys.stderr)
            return EXIT_CONFIG
        finally:
            await store.close()
        print(report)
        return 0

    return asyncio.run(main())


def cmd_crm_export(args: argparse.Namespace) -> int:
    from crmstore.import_export import export
    from crmstore.store import open_store

    async def main() -> int:
        store = await open_store(args.db, default_country=args.country)
        try:
            n = await export(store, Path(args.file))
        finally:
            await store.close()
        print(f"exported {n} customers to {args.file}")
        return 0

    return asyncio.run(main())


def cmd_hash_password(args: argparse.Namespace) -> int:
    from .gateway.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Password: ")
    if len(password) < 8:
        print("ctiserver hash-password: use at least 8 characters", file=sys.stderr)
        return EXIT_CONFIG
    print(hash_password(password))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctiserver", description="Contact-center CTI server beside Asterisk")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="server + PBX simulator + sample CRM + simulated callers and agents")
    d.add_argument("--data-dir", default="var/demo")
    d.add_argument("--http-port", type=int, default=8088)
    d.add_argument("--agi-port", type=int, default=4573)
    d.add_argument("--calls-per-minute", type=float, default=6.0)
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run against real Asterisk servers")
    r.add_argument("--config", required=True)
    r.set_defaults(func=cmd_run)

    f = sub.add_parser("flows", help="IVR flows")
    fsub = f.add_subparsers(dest="flows_command", required=True)
    fc = fsub.add_parser("check", help="validate flow files; errors with file:line:column")
    fc.add_argument("files", nargs="+")
    fc.add_argument("--prompts", action="append", default=[], help="prompt directory (repeatable)")
    fc.add_argument("--queues", help="ACD queues YAML: check queue and skill names against it")
    fc.set_defaults(func=cmd_flows_check)

    c = sub.add_parser("crm", help="CRM side-store")
    csub = c.add_subparsers(dest="crm_command", required=True)
    for name, func, helptext in (("import", cmd_crm_import, "import customers and history (CSV or JSON)"),
                                 ("export", cmd_crm_export, "export customers and history (CSV or JSON)")):
        cp = csub.add_parser(name, help=helptext)
        cp.add_argument("file")
        cp.add_argument("--db", default="sqlite:///var/crm.db", help="database URL")
        cp.add_argument("--country", default="CN", help="default country for phone numbers")
        cp.set_defaults(func=func)

    h = sub.add_parser("hash-password", help="make a password hash for an account in cti.yaml")
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
