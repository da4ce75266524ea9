"""cti.yaml: parsed once into typed objects; every error names the file, the line and the field."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from acd import devices
from ivr_flows.speech import REJECT_MARGIN

from .agi.peers import LOOPBACK, AllowList
from .consoles.devices import PhoneSettings
from .consoles.softphone import SoftphoneSettings
from .consoles.softphone import settings_problem as softphone_settings_problem
from .dialer.settings import DialerSettings, dialer_settings_from
from .outbound.callbacks import CallbackSettings
from .outbound.dialling import DialSettings
from .outbound.settings import callback_settings_from, click_to_call_settings_from, web_callback_settings_from
from .outbound.web import WebCallbackSettings

MAX_FILE_BYTES = 2_000_000  # a security limit: cti.yaml is text written by people
MAX_DEPTH = 64  # nesting levels; cti.yaml needs 4. The YAML composer recurses once per level.


_T = TypeVar("_T")


class ConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class PbxConfig:
    name: str
    host: str
    port: int
    username: str
    secret: str


@dataclass(frozen=True, slots=True)
class Bind:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ConsolesConfig:
    """consoles: how long an agent may be without any console before being paused (console_lost; 0: never),
    and the websocket keepalive that finds a console whose network is gone (a laptop asleep sends no
    close): a ping every ping_interval_s, the connection dropped when no pong comes in ping_timeout_s."""

    lost_after_s: float = 30.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """metrics: Prometheus's /metrics on the console gateway's port, for the networks in `allow` only
    (others get 403); enabled: false, it is not served at all."""

    enabled: bool = True
    allow: AllowList = LOOPBACK


@dataclass(frozen=True, slots=True)
class CtiConfig:
    path: Path
    pbxes: tuple[PbxConfig, ...]
    agi: Bind
    http: Bind
    database_url: str
    default_country: str
    flows_dir: Path
    flow_by_did: dict[str, str]
    default_flow: str
    prompts_dir: Path | None
    queues_file: Path
    recordings_dir: Path
    speech_models: dict[str, Path]
    speech_keep_recordings_s: float  # speech menus' recordings kept for review; 0: deleted once decided
    speech_reject_margin: float  # how much worse than the garbage model a menu word may score and be taken
    accounts: tuple[dict[str, Any], ...]  # validated by ctiserver.gateway.auth.Accounts.from_config
    token_secret: str
    token_ttl_s: int
    timezone: str | None = None  # the centre's day for the statistics (IANA name); None: the machine's
    # Speech menus' audio streams (Asterisk AudioSocket connects here); port 0: off (menus listen to files).
    audiosocket: Bind = Bind("127.0.0.1", 4574)
    audiosocket_advertise: str | None = None  # the host Asterisk dials, when not the bound one
    journal_batch_ms: int = 20  # what a crash may lose at most
    checkpoint_facts: int = 20_000
    checkpoint_s: int = 60
    extra: dict[str, Any] = field(default_factory=dict)
    # Who may open a FastAGI session: agi.allow, else the addresses of the PBX hosts (resolved at load).
    agi_allow: AllowList = ()
    agents: PhoneSettings = field(default_factory=PhoneSettings)  # the site's phones: device template, auto-answer
    consoles: ConsolesConfig = field(default_factory=lambda: ConsolesConfig())
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    recordings: CallRecordingConfig = field(default_factory=lambda: CallRecordingConfig())
    dialer: DialerSettings | None = None  # outbound campaigns (docs/outbound.md, Running a campaign)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)  # docs/callbacks.md
    web_callbacks: WebCallbackSettings = field(default_factory=WebCallbackSettings)
    web_api_port: int | None = None  # web_callbacks.port: POST /api/callback; None: not served
    click_to_call: DialSettings = field(default_factory=DialSettings)


@dataclass(frozen=True, slots=True)
class CallRecordingConfig:
    """``recordings: {dir: recordings/calls, pbx_dir: /var/spool/asterisk/monitor/cti, retention_days: 90}``.
    `dir` is where this server reads the WAVs; `pbx_dir` the same directory as the PBX writes it (MixMonitor's
    File is a path on the PBX host). None: ``<ivr.recordings_dir>/calls`` for both."""

    dir: Path | None = None
    pbx_dir: str | None = None
    retention_days: int = 90  # 0: never deleted
    sweep_every_s: int = 3600


class _Reader:
    """Walks the composed YAML node tree so errors can cite lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []

    def err(self, node: yaml.Node | None, where: str, msg: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.errors.append(f"{self.path}{line}: {where}: {msg}")


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader refusing nesting deeper than MAX_DEPTH with a position, instead of a RecursionError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _read_text(path: Path) -> str:
    """The file as text, refused (before it is read) when too large, and when not UTF-8."""
    too_large = ConfigError([f"{path}: larger than {MAX_FILE_BYTES} bytes: not a configuration file"])
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise too_large
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # a pipe or a device has no size to check first
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from e
    if len(raw) > MAX_FILE_BYTES:
        raise too_large
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text (byte {e.start})"]) from None


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    return {}


def _timezone(r: _Reader, top: dict[str, yaml.Node], name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        r.err(_mapping(top.get("centre")).get("timezone"), "centre.timezone",
              f"{name!r} is not a time zone name (e.g. Asia/Shanghai)")
        return None
    return name


# (index in the pbx list, the PBX, its node): where an error about that PBX points.
_PbxAt = tuple[int, PbxConfig, yaml.Node]


def _agi_allow(r: _Reader, agi: yaml.Node | None, pbxes: list[_PbxAt]) -> AllowList:
    """``agi.allow``: IP addresses and networks. Unset, the PBX hosts' addresses: they are the only peers
    FastAGI serves (``AGI(agi://...)`` runs on the PBX)."""
    node = _mapping(agi).get("allow")
    if node is None:
        return _pbx_addresses(r, pbxes)
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        r.err(node, "agi.allow", "list the PBXes' IP addresses or networks, e.g. [10.0.0.10, 10.0.1.0/24]")
        return ()
    nets = []
    for i, item in enumerate(node.value):
        if not isinstance(item, yaml.ScalarNode):
            r.err(item, f"agi.allow[{i}]", "must be an IP address or network, not a list or mapping")
            continue
        # The scalar's text, not YAML's reading of it: YAML 1.1 reads 10:20 as a number.
        try:
            nets.append(ip_network(item.value.strip()))
        except ValueError as e:
            r.err(item, f"agi.allow[{i}]", f"not an IP address or network: {item.value!r} ({e})")
    return tuple(nets)


def _pbx_addresses(r: _Reader, pbxes: list[_PbxAt]) -> AllowList:
    nets = []
    for i, pbx, node in pbxes:
        try:
            addrs = [ip_address(pbx.host)]
        except ValueError:
            try:
                infos = socket.getaddrinfo(pbx.host, None, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as e:
                why = getattr(e, "strerror", None) or str(e)
                r.err(_mapping(node).get("host", node), f"pbx[{i}].host",
                      f"{pbx.host!r} does not resolve ({why}); FastAGI accepts only the PBXes' addresses, "
                      "so fix the host or list them in agi.allow")
                continue
            addrs = [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        for addr in addrs:
            net = ip_network(addr)
            if net not in nets:
                nets.append(net)
    return tuple(nets)


_AGENTS_KEYS = ("device", "auto_answer", "softphone")


def _phones(r: _Reader, node: yaml.Node | None) -> PhoneSettings:
    """``agents: {device: "PJSIP/{extension}", auto_answer: true}``: how an agent's (and a supervisor's)
    phone is dialled when queues.yaml gives the agent no device of its own."""
    if node is None:
        return PhoneSettings()
    if not isinstance(node, yaml.MappingNode):
        r.err(node, "agents", 'must be a mapping, e.g. {device: "PJSIP/{extension}", auto_answer: false}')
        return PhoneSettings()
    fields = _mapping(node)
    for key in fields:
        if key not in _AGENTS_KEYS:
            r.err(next(k for k, _ in node.value if getattr(k, "value", None) == key), f"agents.{key}",
                  f"unknown field; expected one of {list(_AGENTS_KEYS)}")
    settings = PhoneSettings()
    device = settings.device
    dev = fields.get("device")
    if dev is not None:
        if not isinstance(dev, yaml.ScalarNode) or not dev.value.strip():
            r.err(dev, "agents.device", 'must be a dial string template, e.g. "PJSIP/{extension}"')
        elif (problem := devices.device_problem(dev.value)) is not None:
            r.err(dev, "agents.device", problem)
        else:
            device = devices.without_optimization(dev.value)
    auto = settings.auto_answer
    aa = fields.get("auto_answer")
    if aa is not None:
        if not isinstance(aa, yaml.ScalarNode) or aa.tag != "tag:yaml.org,2002:bool":
            r.err(aa, "agents.auto_answer", "must be true or false")
        else:
            auto = aa.value.lower() in ("true", "yes", "on")
            if auto and devices.desk_phone(devices.render(device, "1001")) is None:
                r.err(aa, "agents.auto_answer", f"auto-answer is a SIP header for desk phones: agents.device "
                      f"must be PJSIP/<endpoint> (e.g. PJSIP/{{extension}}), not {device!r}")
                auto = False
    return PhoneSettings(device, auto, _softphone(r, fields.get("softphone")))


_SOFTPHONE_KEYS = ("ws_url", "secret", "domain", "register_expires_s", "ice_servers")


def _softphone(r: _Reader, node: yaml.Node | None) -> SoftphoneSettings | None:
    """``agents: {softphone: {ws_url: "wss://pbx:8089/ws", secret: "..."}}``: the console is the phone."""
    if node is None:
        return None
    example = '{ws_url: "wss://pbx.example.com:8089/ws", secret: "a long random string"}'
    if not isinstance(node, yaml.MappingNode):
        r.err(node, "agents.softphone", f"must be a mapping, e.g. {example}")
        return None
    raw = yaml.safe_load(yaml.serialize(node)) or {}
    unknown = sorted(set(raw) - set(_SOFTPHONE_KEYS))
    if unknown:
        r.err(node, "agents.softphone", f"unknown field {unknown[0]!r}; expected one of {list(_SOFTPHONE_KEYS)}")
        return None
    ws_url, secret = str(raw.get("ws_url") or ""), str(raw.get("secret") or "")
    problem = softphone_settings_problem(ws_url, secret)
    expires = raw.get("register_expires_s", 300)
    ice = raw.get("ice_servers") or []
    if problem is None and (not isinstance(expires, int) or isinstance(expires, bool) or not 60 <= expires <= 3600):
        problem = "register_expires_s must be a whole number of seconds from 60 to 3600"
    if problem is None and not (isinstance(ice, list) and all(isinstance(u, str) and u.startswith(("stun:", "turn:",
                                                                                                    "turns:"))
                                                                 for u in ice)):
        problem = "ice_servers must be a list of stun:/turn: URLs"
    if problem is not None:
        r.err(node, "agents.softphone", problem)
        return None
    return SoftphoneSettings(ws_url=ws_url, secret=secret, domain=str(raw.get("domain") or ""),
                             register_expires_s=expires, ice_servers=tuple(ice))


def _consoles(r: _Reader, node: yaml.Node | None, raw: object) -> ConsolesConfig:
    if node is None:
        return ConsolesConfig()
    if not isinstance(raw, dict):
        r.err(node, "consoles", "must be a mapping (lost_after_s, ping_interval_s, ping_timeout_s)")
        return ConsolesConfig()
    nodes = _mapping(node)
    values: dict[str, float] = {}
    for key in raw:
        if key not in ("lost_after_s", "ping_interval_s", "ping_timeout_s"):
            r.err(nodes.get(str(key), node), f"consoles.{key}",
                  "unknown setting (lost_after_s, ping_interval_s, ping_timeout_s)")
            continue
        value = raw[key]
        least = 0.0 if key == "lost_after_s" else 0.1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not least <= value <= 86400:
            r.err(nodes.get(key), f"consoles.{key}", f"must be a number of seconds from {least:g} to 86400, "
                                                    f"not {value!r}")
            continue
        values[key] = float(value)
    return ConsolesConfig(**values)


_METRICS_KEYS = ("enabled", "allow")
_RECORDINGS_KEYS = ("dir", "pbx_dir", "retention_days", "sweep_every_s")


def _recordings(r: _Reader, node: yaml.Node | None, base: Path) -> CallRecordingConfig:
    if node is None:
        return CallRecordingConfig()
    if not isinstance(node, yaml.MappingNode):
        r.err(node, "recordings", "must be a mapping, e.g. {dir: recordings/calls, retention_days: 90}")
        return CallRecordingConfig()
    values: dict[str, object] = {}
    for key_node, value in node.value:
        key = getattr(key_node, "value", None)
        if key not in _RECORDINGS_KEYS:
            r.err(key_node, f"recordings.{key}", f"unknown field; expected one of {list(_RECORDINGS_KEYS)}")
        elif not isinstance(value, yaml.ScalarNode) or not value.value.strip():
            r.err(value, f"recordings.{key}", "must be a single value")
        elif key in ("retention_days", "sweep_every_s"):
            if not re.fullmatch(r"[0-9]{1,6}", value.value) or (key == "sweep_every_s" and int(value.value) < 1):
                r.err(value, f"recordings.{key}", f"must be a whole number of {key.split('_')[-1]}"
                      + (" (0: never delete)" if key == "retention_days" else ", at least 1"))
            else:
                values[key] = int(value.value)
        elif key == "pbx_dir" and not value.value.startswith("/"):
            r.err(value, "recordings.pbx_dir", "must be an absolute path on the PBX host")
        else:
            values[key] = base / value.value if key == "dir" else value.value
    return CallRecordingConfig(**values)  # type: ignore[arg-type]


def _metrics(r: _Reader, node: yaml.Node | None) -> MetricsConfig:
    """``metrics: {enabled: true, allow: [127.0.0.1, 10.0.5.0/24]}``: who may scrape /metrics."""
    if node is None:
        return MetricsConfig()
    if not isinstance(node, yaml.MappingNode):
        r.err(node, "metrics", "must be a mapping, e.g. {enabled: true, allow: [127.0.0.1, 10.0.5.0/24]}")
        return MetricsConfig()
    fields = _mapping(node)
    for key_node, _ in node.value:
        key = getattr(key_node, "value", None)
        if key not in _METRICS_KEYS:
            r.err(key_node, f"metrics.{key}", f"unknown field; expected one of {list(_METRICS_KEYS)}")
    enabled = True
    en = fields.get("enabled")
    if en is not None:
        if not isinstance(en, yaml.ScalarNode) or en.tag != "tag:yaml.org,2002:bool":
            r.err(en, "metrics.enabled", "must be true or false")
        else:
            enabled = en.value.lower() in ("true", "yes", "on")
    allow = LOOPBACK
    node_allow = fields.get("allow")
    if node_allow is not None:
        if not isinstance(node_allow, yaml.SequenceNode) or not node_allow.value:
            r.err(node_allow, "metrics.allow", "list the Prometheus servers' addresses or networks, "
                                               "e.g. [127.0.0.1, 10.0.5.0/24]")
            return MetricsConfig(enabled, ())
        nets = []
        for i, item in enumerate(node_allow.value):
            if not isinstance(item, yaml.ScalarNode):
                r.err(item, f"metrics.allow[{i}]", "must be an IP address or network, not a list or mapping")
                continue
            try:
                nets.append(ip_network(item.value.strip()))
            except ValueError as e:
                r.err(item, f"metrics.allow[{i}]", f"not an IP address or network: {item.value!r} ({e})")
        allow = tuple(nets)
    return MetricsConfig(enabled, allow)


def _dialer(r: _Reader, node: yaml.Node | None, raw: object) -> DialerSettings | None:
    if node is None:
        return None
    try:
        return dialer_settings_from(raw)
    except ValueError as e:
        field_, _, message = str(e).partition(": ")
        r.err(node, field_, message)
        return None


def _section(r: _Reader, node: yaml.Node | None, read: Callable[[], _T], default: _T) -> _T:
    """One outbound section read by its own checker: its one-line error gets the file and line."""
    if node is None:
        return default
    try:
        return read()
    except ValueError as e:
        field_, _, message = str(e).partition(": ")
        r.err(node, field_, message)
        return default


def load_config(path: str | Path) -> CtiConfig:
    path = Path(path)
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}{line}: not valid YAML: {getattr(e, 'problem', e)}"]) from e
    r = _Reader(path)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    top = _mapping(root)
    data: dict[str, Any] = yaml.load(text, Loader=_BoundedLoader) or {}  # a SafeLoader
    base = path.parent

    def scalar(section: str, key: str, default: Any = None, kind: type = str, required: bool = False) -> Any:
        node = _mapping(top.get(section)).get(key) if section else top.get(key)
        value = (data.get(section) or {}).get(key) if section else data.get(key)
        where = f"{section}.{key}" if section else key
        if value is None:
            if required:
                r.err(top.get(section) if section else root, where, "is required")
            return default
        if kind is int and not isinstance(value, int):
            r.err(node, where, f"must be a whole number, not {value!r}")
            return default
        if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            r.err(node, where, f"must be a number of seconds, not {value!r}")
            return default
        if kind is str and not isinstance(value, (str, int)):
            r.err(node, where, f"must be text, not {type(value).__name__}")
            return default
        return kind(value)

    pbxes: list[PbxConfig] = []
    pbx_at: list[_PbxAt] = []
    pbx_nodes = top.get("pbx")
    if not isinstance(pbx_nodes, yaml.SequenceNode) or not pbx_nodes.value:
        r.err(pbx_nodes or root, "pbx", "list at least one PBX (name, host, port, username, secret)")
    else:
        seen: set[str] = set()
        for i, (node, raw) in enumerate(zip(pbx_nodes.value, data["pbx"], strict=False)):
            where = f"pbx[{i}]"
            if not isinstance(raw, dict):
                r.err(node, where, "must be a mapping")
                continue
            missing = [k for k in ("name", "host", "username", "secret") if not raw.get(k)]
            if missing:
                r.err(node, where, f"missing {', '.join(missing)}")
                continue
            if raw["name"] in seen:
                r.err(node, where, f"duplicate PBX name {raw['name']!r}")
            seen.add(raw["name"])
            port = raw.get("port", 5038)
            if not isinstance(port, int) or not 0 < port < 65536:
                r.err(node, f"{where}.port", f"not a TCP port: {port!r}")
                continue
            pbxes.append(PbxConfig(str(raw["name"]), str(raw["host"]), port, str(raw["username"]),
                                   str(raw["secret"])))
            pbx_at.append((i, pbxes[-1], node))

    accounts = tuple(data.get("accounts") or ())
    if not all(isinstance(a, dict) for a in accounts):
        r.err(top.get("accounts"), "accounts", "must be a list of mappings (username, role, password_hash ...)")
        accounts = ()

    secret = scalar("security", "token_secret", required=True)
    if secret is not None and len(str(secret)) < 16:
        r.err(_mapping(top.get("security")).get("token_secret"), "security.token_secret",
              "must be at least 16 characters")

    models = {str(k): base / str(v) for k, v in ((data.get("speech") or {}).get("models") or {}).items()}
    cfg = CtiConfig(
        path=path,
        pbxes=tuple(pbxes),
        agi=Bind(scalar("agi", "host", "127.0.0.1"), scalar("agi", "port", 4573, int)),
        http=Bind(scalar("http", "host", "127.0.0.1"), scalar("http", "port", 8080, int)),
        database_url=scalar("crm", "url", f"sqlite:///{base / 'crm.db'}"),
        default_country=scalar("crm", "default_country", "CN"),
        flows_dir=base / scalar("ivr", "flows_dir", "flows"),
        flow_by_did={str(k): str(v) for k, v in ((data.get("ivr") or {}).get("flow_by_did") or {}).items()},
        default_flow=scalar("ivr", "default_flow", "main"),
        prompts_dir=(base / p) if (p := scalar("ivr", "prompts_dir")) else None,
        queues_file=base / scalar("acd", "queues_file", "queues.yaml"),
        recordings_dir=base / scalar("ivr", "recordings_dir", "recordings"),
        speech_models=models,
        speech_keep_recordings_s=scalar("speech", "keep_recordings_s", 0.0, float),
        speech_reject_margin=scalar("speech", "reject_margin", REJECT_MARGIN, float),
        accounts=accounts,
        token_secret=str(secret or ""),
        token_ttl_s=scalar("security", "token_ttl_s", 8 * 3600, int),
        timezone=_timezone(r, top, scalar("centre", "timezone")),
        audiosocket=Bind(scalar("audiosocket", "host", "127.0.0.1"), scalar("audiosocket", "port", 4574, int)),
        audiosocket_advertise=scalar("audiosocket", "advertise"),
        journal_batch_ms=scalar("journal", "batch_ms", 20, int),
        checkpoint_facts=scalar("journal", "checkpoint_facts", 20_000, int),
        checkpoint_s=scalar("journal", "checkpoint_s", 60, int),
        extra={k: v for k, v in data.items() if k not in
               {"pbx", "agi", "audiosocket", "http", "crm", "ivr", "acd", "speech", "accounts", "security", "centre",
                "journal", "agents", "consoles", "metrics", "recordings", "dialer", "callbacks", "web_callbacks",
                "click_to_call"}},
        agi_allow=_agi_allow(r, top.get("agi"), pbx_at),
        agents=_phones(r, top.get("agents")),
        consoles=_consoles(r, top.get("consoles"), data.get("consoles")),
        metrics=_metrics(r, top.get("metrics")),
        recordings=_recordings(r, top.get("recordings"), base),
        dialer=_dialer(r, top.get("dialer"), data.get("dialer")),
        callbacks=_section(r, top.get("callbacks"), lambda: callback_settings_from(data.get("callbacks")),
                           CallbackSettings()),
        click_to_call=_section(r, top.get("click_to_call"),
                               lambda: click_to_call_settings_from(data.get("click_to_call")), DialSettings()),
    )
    no_web: tuple[int | None, WebCallbackSettings] = (
        None, WebCallbackSettings(countries=(cfg.default_country,), default_country=cfg.default_country))
    web_api_port, web = _section(
        r, top.get("web_callbacks"),
        lambda: web_callback_settings_from(data.get("web_callbacks"), cfg.default_country), no_web)
    cfg = dataclasses.replace(cfg, web_callbacks=web, web_api_port=web_api_port)
    if r.errors:
        raise ConfigError(r.errors)
    return cfg
