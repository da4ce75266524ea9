"""The browser phones' side of the shipped configuration: the WebRTC endpoint template offers what a browser needs
(DTLS-SRTP, ICE, rtcp-mux, AVPF; ulaw before opus, since this Asterisk has no opus transcoder), every browser
phone's password is the one the CTI derives from the example's softphone secret (so the console the CTI hands it
to can register), and the websocket URL of the example names the port http.conf serves TLS on."""

from __future__ import annotations

import re
from pathlib import Path

from ctiserver.config import load_config
from ctiserver.consoles.softphone import auth_section, sip_password
from tests.asterisk_config.ini import Section, parse_file

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "asterisk-config"
EXAMPLE = ROOT / "docs" / "cti.example.yaml"


def sections(name: str) -> list[Section]:
    return parse_file(CONF / name)


def webrtc_endpoints() -> list[Section]:
    return [s for s in sections("pjsip.conf") if not s.template and "agent-webrtc" in s.bases]


def test_webrtc_template_offers_what_browsers_need() -> None:
    (template,) = [s for s in sections("pjsip.conf") if s.name == "agent-webrtc"]
    want = {"webrtc": "yes", "use_avpf": "yes", "media_encryption": "dtls", "dtls_verify": "fingerprint",
            "dtls_setup": "actpass", "ice_support": "yes", "rtcp_mux": "yes", "dtls_auto_generate_cert": "yes",
            "dtmf_mode": "rfc4733", "direct_media": "no"}
    assert {k: template.get(k) for k in want} == want
    codecs = (template.get("allow") or "").split(",")
    assert codecs[0] == "ulaw" and "opus" in codecs  # G.711 first: no transcoding to the callers' ulaw/alaw


def test_browser_phones_have_the_derived_password_and_one_contact() -> None:
    cfg = load_config(EXAMPLE)
    soft = cfg.agents.softphone
    assert soft is not None
    phones = webrtc_endpoints()
    assert [s.name for s in phones] == ["1002"]
    by_kind: dict[tuple[str, str], Section] = {}
    for s in sections("pjsip.conf"):
        if not s.template:
            by_kind[(s.name, s.get("type") or "")] = s
    for endpoint in phones:
        auth = by_kind[(endpoint.get("auth") or "", "auth")]
        assert auth.get("username") == endpoint.name
        assert auth.get("password") == sip_password(soft.secret, endpoint.name), \
            f"[{endpoint.name}] password: paste `ctiserver softphone-auth` output (README step 7)"
        aor = by_kind[(endpoint.get("aors") or "", "aor")]
        assert "agent-webrtc-aor" in aor.bases
        assert aor.get("max_contacts") == "1" and aor.get("remove_existing") == "yes"
    assert auth_section(soft.secret, "1002").splitlines()[2] == f"password = {sip_password(soft.secret, '1002')}"


def test_example_websocket_url_is_the_tls_port_of_http_conf() -> None:
    soft = load_config(EXAMPLE).agents.softphone
    assert soft is not None
    (general,) = [s for s in sections("http.conf") if s.name == "general"]
    assert general.get("tlsenable") == "yes"
    port = (general.get("tlsbindaddr") or "").rsplit(":", 1)[1]
    assert soft.ws_url.startswith("wss://") and soft.ws_url.endswith(f":{port}/ws")


def test_passwords_differ_per_extension_and_per_secret() -> None:
    a, b = sip_password("s" * 20, "1002"), sip_password("s" * 20, "1003")
    assert a != b and a != sip_password("t" * 20, "1002")
    assert len(a) == 24 and a.isalnum()


def test_softphone_auth_prints_what_pjsip_conf_needs(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ctiserver.cli", "softphone-auth", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)

    out = run("--config", str(EXAMPLE), "1002")
    assert out.returncode == 0, out.stderr
    (shipped,) = [s for s in sections("pjsip.conf") if s.name == "1002" and s.get("type") == "auth"]
    assert f"password = {shipped.get('password')}" in out.stdout
    no_section = tmp_path / "cti.yaml"
    no_section.write_text(EXAMPLE.read_text(encoding="utf-8").split("  softphone:")[0]
                          + EXAMPLE.read_text(encoding="utf-8").split("ice_servers: []")[1].split("\n", 1)[1])
    refused = run("--config", str(no_section), "1002")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "no agents.softphone" in refused.stderr
    missing = run("--config", str(tmp_path / "nope.yaml"), "1002")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_the_page_the_readme_opens_to_accept_the_certificate_is_served() -> None:
    # Asterisk 22 serves /httpstatus only with enable_status = yes (main/http.c: off by default, whatever the
    # sample says): a README sending agents there shows them a 404. /ws is always there (426 to a plain GET).
    readme = (CONF / "README.md").read_text()
    (general,) = [s for s in sections("http.conf") if s.name == "general"]
    port = (general.get("tlsbindaddr") or "").rsplit(":", 1)[1]
    opened = re.findall(rf"https://<pbx-name>:{port}/(\w+)", readme)
    assert opened, "the README says which page to open to accept the certificate"
    served = {"ws"} | ({"httpstatus"} if general.get("enable_status") == "yes" else set())
    assert set(opened) <= served, f"README opens {sorted(set(opened) - served)}: not served by http.conf"
