"""The shipped Asterisk configuration (asterisk-config/*.conf) against what Asterisk 22 accepts.

Every keyword must be one Asterisk reads in that kind of section (asterisk22_keywords.yaml, checked against
Asterisk 22.10.1's samples and source); addresses must be IP literals, since a host name that does not resolve
when the file loads makes Asterisk refuse the object (a pjsip identify: "Could not create an object of type
'identify'"); the files that modules refuse to load without are shipped; and the cross-file facts the CTI
relies on hold (the AMI user's write timeout and rights, the WebRTC transport's TLS, the parking lot).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pbxsim import parking as sim_parking
from tests.asterisk_config.ini import Section, parse_file

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "asterisk-config"
TABLE: dict[str, dict[str, Any]] = yaml.safe_load(
    (Path(__file__).with_name("asterisk22_keywords.yaml")).read_text(encoding="utf-8"))
SHIPPED = sorted(CONF_DIR.glob("*.conf"))

# Options whose value names a host that Asterisk looks up when it loads the file (or, for a contact or a
# proxy, the first time it sends). A shipped placeholder must load on any PBX, so only IP literals.
ADDRESS_OPTIONS: dict[tuple[str, str], set[str]] = {
    ("pjsip.conf", "identify"): {"match"},
    ("pjsip.conf", "aor"): {"contact", "outbound_proxy"},
    ("pjsip.conf", "endpoint"): {"outbound_proxy", "media_address", "permit", "deny"},
    ("pjsip.conf", "transport"): {"bind", "external_media_address", "external_signaling_address", "local_net"},
    ("pjsip.conf", "registration"): {"server_uri", "client_uri", "outbound_proxy"},
    ("pjsip.conf", "acl"): {"permit", "deny", "contact_permit", "contact_deny"},
    ("manager.conf", "general"): {"bindaddr", "tlsbindaddr"},
    ("manager.conf", "user"): {"permit", "deny"},
    ("http.conf", "general"): {"bindaddr", "tlsbindaddr"},
    ("http.conf", "restriction"): {"permit", "deny"},
}
# Reserved names (RFC 2606 / 6761): a sure sign of a placeholder that will not resolve.
PLACEHOLDER_HOST = re.compile(r"[A-Za-z0-9-]+\.(example|invalid|test|localhost)\b|\bexample\.(com|net|org)\b")

# main/manager.c perms[]: the class names read= and write= accept
AMI_CLASSES = {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf", "reporting",
               "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security", "message", "all", "none"}
# AMI actions the CTI sends and the classes Asterisk 22 registers them under (any one of them is enough)
CTI_ACTIONS = {
    "Originate": {"originate"}, "Redirect": {"call"}, "Bridge": {"call"}, "Setvar": {"call"},
    "Getvar": {"call", "reporting"}, "Atxfer": {"call"}, "BlindTransfer": {"call"}, "Park": {"call"},
    "Hangup": {"system", "call"}, "Status": {"system", "call", "reporting"},
    "CoreShowChannels": {"system", "reporting"}, "MixMonitor": {"system"}, "StopMixMonitor": {"system", "call"},
}
# modules that `.requires` a module we switch off (Asterisk 22 module info): left to load, each logs
# "Error loading module ..., missing dependency"
DEPENDENTS = {"res_phoneprov": {"res_pjsip_phoneprov_provider"}}
# modules the dialplan and the CTI use; modules.conf must not switch them off
NEEDED_MODULES = {"res_agi", "app_dial", "app_chanspy", "app_mixmonitor", "res_musiconhold", "app_voicemail",
                  "app_stack", "func_strings", "res_pjsip_header_funcs",  # auto-answer, CTI_TRUNK
                  "res_pjsip", "chan_pjsip", "res_pjsip_session", "res_pjsip_endpoint_identifier_ip",
                  "res_pjsip_transport_websocket", "res_http_websocket", "res_parking", "bridge_simple",
                  "bridge_holding", "pbx_config", "app_amd"}


def load(name: str) -> list[Section]:
    return parse_file(CONF_DIR / name)


def kind_of(spec: dict[str, Any], section: Section) -> str | None:
    if "kind_by" in spec:
        return section.get(spec["kind_by"])
    kind = spec.get("sections", {}).get(section.name, spec.get("other"))
    return kind if isinstance(kind, str) else None


def objects(name: str) -> list[tuple[str, Section]]:
    """(kind, section) for every section Asterisk builds something from: templates only lend entries."""
    spec = TABLE[name]
    return [(kind_of(spec, s) or "", s) for s in load(name) if not s.template]


def keyword_problems(name: str) -> list[str]:
    spec = TABLE[name]
    problems = []
    for section in load(name):
        kind = kind_of(spec, section)
        if kind is None:
            if section.template:
                continue  # a template without a type lends its entries; they are checked where used
            how = f"no `{spec['kind_by']}`" if "kind_by" in spec else f"{name} has no section [{section.name}]"
            problems.append(f"{name}:{section.line}: [{section.name}]: {how}")
            continue
        allowed = set(spec["kinds"].get(kind, ()))
        prefixes = tuple(spec.get("prefixes", {}).get(kind, ()))
        pattern = spec.get("patterns", {}).get(kind)
        if not allowed and not prefixes and pattern is None:
            problems.append(f"{name}:{section.line}: [{section.name}]: unknown kind {kind!r}")
            continue
        for e in section.entries:
            if e.key in allowed or (prefixes and e.key.startswith(prefixes)):
                continue
            if pattern is not None and re.fullmatch(pattern, e.key):
                continue
            elsewhere = sorted(k for k, keys in spec["kinds"].items() if e.key in keys)
            hint = f" (Asterisk reads it only in: {', '.join(elsewhere)})" if elsewhere else ""
            problems.append(f"{e.file}:{e.line}: [{section.name}] ({kind}): {e.key!r} is not a {kind} "
                            f"keyword in Asterisk 22{hint}")
    return problems


def hosts(value: str) -> list[str]:
    """The host part of each item in an address option: `sip:user@host:port;x=y`, `host/mask`, `[v6]:port`."""
    found = []
    for item in value.split(","):
        item = re.sub(r"^sips?:", "", item.strip()).split(";")[0]
        item = item.rsplit("@", 1)[-1].split("/")[0]
        if item.startswith("["):
            item = item[1:item.index("]")] if "]" in item else item[1:]
        elif item.count(":") == 1:
            item = item.split(":")[0]
        if item:
            found.append(item)
    return found


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def test_every_shipped_conf_is_in_the_table():
    assert SHIPPED, CONF_DIR
    assert [p.name for p in SHIPPED if p.name not in TABLE] == []


@pytest.mark.parametrize("name", [p.name for p in SHIPPED])
def test_every_keyword_is_one_asterisk_22_reads_in_its_section(name: str):
    problems = keyword_problems(name)
    assert not problems, "\n".join(problems)


def test_files_modules_refuse_to_load_without_are_shipped():
    # res_parking declines to load without res_parking.conf; pjsip's wss transport needs http.conf's TLS;
    # app_amd declines without amd.conf (seen on 22.10.1: "Configuration file amd.conf missing"), and every
    # campaign line then hangs up at AMD() in [cti-dialer]
    shipped = {p.name for p in SHIPPED}
    assert {"res_parking.conf", "http.conf", "amd.conf"} <= shipped


def test_readme_installs_every_shipped_file():
    readme = (CONF_DIR / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in SHIPPED if f"`{p.name}`" not in readme] == []


def test_writetimeout_is_on_the_cti_user_not_in_general():
    sections = load("manager.conf")
    general = [e for s in sections if s.name == "general" for e in s.entries]
    assert [e.line for e in general if e.key == "writetimeout"] == []
    (cti,) = [s for s in sections if s.name == "cti"]
    timeout = cti.get("writetimeout")
    assert timeout is not None and int(timeout) >= 100  # Asterisk ignores values under 100 ms


def test_no_host_name_that_must_resolve_when_the_file_loads():
    problems = []
    for path in SHIPPED:
        spec = TABLE[path.name]
        for section in load(path.name):
            kind = kind_of(spec, section) or ""
            options = ADDRESS_OPTIONS.get((path.name, kind), set())
            for e in section.entries:
                if PLACEHOLDER_HOST.search(e.value):
                    problems.append(f"{e.file}:{e.line}: {e.key} = {e.value}: a placeholder name never resolves")
                elif e.key in options:
                    problems += [f"{e.file}:{e.line}: {e.key} = {e.value}: {h!r} is not an IP address"
                                 for h in hosts(e.value) if not is_ip(h)]
    assert not problems, "\n".join(problems)


def test_pjsip_references_name_objects_of_the_right_type():
    by_type: dict[str, set[str]] = {}
    for kind, section in objects("pjsip.conf"):
        by_type.setdefault(kind, set()).add(section.name)
    refs = {("endpoint", "aors"): "aor", ("endpoint", "auth"): "auth", ("endpoint", "outbound_auth"): "auth",
            ("endpoint", "transport"): "transport", ("identify", "endpoint"): "endpoint",
            ("registration", "outbound_auth"): "auth", ("registration", "transport"): "transport"}
    problems = []
    for kind, section in objects("pjsip.conf"):
        for e in section.entries:
            target = refs.get((kind, e.key))
            if target is None:
                continue
            problems += [f"{e.file}:{e.line}: [{section.name}] {e.key} = {name}: no {target} [{name}]"
                         for name in (n.strip() for n in e.value.split(",")) if name not in by_type.get(target, ())]
    assert not problems, "\n".join(problems)


def test_identify_matches_the_trunk_by_address():
    identifies = [s for kind, s in objects("pjsip.conf") if kind == "identify"]
    assert [s.get("endpoint") for s in identifies] == ["trunk"]
    assert all(s.get("match") for s in identifies)


def test_websocket_transport_has_tls_in_http_conf():
    protocols = {s.get("protocol") for kind, s in objects("pjsip.conf") if kind == "transport"}
    assert "wss" in protocols  # browser phones (agent-webrtc)
    (general,) = [s for s in load("http.conf") if s.name == "general"]
    assert general.get("enabled") == "yes" and general.get("tlsenable") == "yes"
    assert general.get("tlsbindaddr") and general.get("tlscertfile") and general.get("tlsprivatekey")


def test_ami_rights_are_real_classes_and_cover_what_the_cti_sends():
    (cti,) = [s for s in load("manager.conf") if s.name == "cti"]
    read = {c.strip() for c in (cti.get("read") or "").split(",")}
    write = {c.strip() for c in (cti.get("write") or "").split(",")}
    assert read - AMI_CLASSES == set() and write - AMI_CLASSES == set()
    assert {"call", "agi", "dialplan"} <= read  # channel and bridge events, AGIExec*, Newexten/VarSet
    assert [action for action, classes in CTI_ACTIONS.items() if not classes & write] == []


def test_modules_conf_keeps_what_the_cti_needs():
    (modules,) = load("modules.conf")
    assert modules.get("autoload") == "yes"  # nothing below is loaded by name
    off = {v.removesuffix(".so") for v in modules.values("noload")}
    assert off & NEEDED_MODULES == set()
    assert [m for module in off for m in sorted(DEPENDENTS.get(module, ())) if m not in off] == []


def test_parking_lot_is_the_one_the_simulator_plays():
    (lot,) = [s for s in load("res_parking.conf") if s.name == sim_parking.LOT]
    assert lot.get("context") == sim_parking.CONTEXT
    first, last = (int(n) for n in (lot.get("parkpos") or "").split("-"))
    assert tuple(str(n) for n in range(first, last + 1)) == sim_parking.SPACES
    assert int(lot.get("parkingtime") or 0) == sim_parking.TIMEOUT


@pytest.mark.parametrize(("value", "found"), [
    ("sip:192.0.2.10:5060", ["192.0.2.10"]),
    ("sip:0212345678@sbc.carrier.net:5060;transport=udp", ["sbc.carrier.net"]),
    ("192.0.2.0/24, 198.51.100.7", ["192.0.2.0", "198.51.100.7"]),
    ("[2001:db8::1]:5060", ["2001:db8::1"]),
    ("2001:db8::1", ["2001:db8::1"]),
    ("0.0.0.0:8089", ["0.0.0.0"]),
])
def test_hosts_are_read_out_of_address_values(value: str, found: list[str]):
    assert hosts(value) == found
    assert [is_ip(h) for h in found] == ["carrier" not in h for h in found]


def test_agent_phones_prefer_a_codec_the_callers_arrive_in():
    # Asterisk's source build has no opus transcoder (codec_opus is a separate binary): an agent leg that
    # negotiates a codec the trunk does not carry could not be bridged to the caller.
    endpoints = {s.name: s for kind, s in objects("pjsip.conf") if kind == "endpoint"}
    trunk = {c.strip() for c in ",".join(endpoints["trunk"].values("allow")).split(",")}
    first = {name: ",".join(s.values("allow")).split(",")[0].strip()
             for name, s in endpoints.items() if name != "trunk"}
    assert first
    assert {name: codec for name, codec in first.items() if codec not in trunk} == {}
