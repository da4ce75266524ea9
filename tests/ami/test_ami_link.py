"""AmiLink over real loopback sockets against a peer replaying the captures' bytes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ctiserver.ami.errors import ActionTimeout, AmiActionError, AmiAuthError, LinkDown
from ctiserver.ami.link import AmiLink, LinkState
from ctiserver.ami.pool import AmiPool
from ctiserver.ami.protocol import AmiParser, Message, UnsafeValue, parse_frame
from ctiserver.ami.resync import PbxSnapshot, resync_hook
from pbxsim.captures import ami_received, capture
from tests.ami.ami_peer import AmiPeer, free_port, recorded_reply, with_action_id


@pytest.fixture
async def peer() -> AsyncIterator[AmiPeer]:
    p = await AmiPeer().start()
    yield p
    await p.close()


def make_link(port: int, secret: str = "ctisecret", **kw: Any) -> AmiLink:
    opts: dict[str, Any] = {
        "action_timeout": 2.0,
        "ping_interval": 30.0,
        "backoff_min": 0.05,
        "backoff_max": 0.2,
        "connect_timeout": 1.0,
        "login_timeout": 2.0,
    }
    opts.update(kw)
    return AmiLink("pbx1", "127.0.0.1", port, "cti", secret, **opts)


async def test_login_plain_sends_the_captured_login_and_comes_up(peer: AmiPeer) -> None:
    events: list[Message] = []
    link = make_link(peer.port, on_event=events.append)
    await link.connect(timeout=3)
    try:
        assert link.state is LinkState.UP
        login = peer.actions("Login")[0]
        assert list(login.keys()) == ["Action", "ActionID", "Username", "Secret"]
        assert login["Secret"] == "ctisecret"
        # FullyBooted right after the login response is published as an ordinary event.
        for _ in range(50):
            if events:
                break
            await asyncio.sleep(0.01)
        assert events[0].event == "FullyBooted"
    finally:
        await link.close()
    assert link.state is LinkState.CLOSED
    assert peer.actions("Logoff"), "close() logs off politely"


async def test_login_md5_challenge(peer: AmiPeer) -> None:
    link = make_link(peer.port, auth="md5", events="off")
    await link.connect(timeout=3)
    try:
        assert [m["Action"] for m in peer.received[:2]] == ["Challenge", "Login"]
        login = peer.received[1]
        assert "Secret" not in login and login["AuthType"] == "MD5" and login["Events"] == "off"
        assert login["Key"] == "bd0849e8707943e9010efa96c01b5981"  # capture 01 AMI3, challenge 166739859
    finally:
        await link.close()


async def test_wrong_credentials_raise_auth_error_and_stop_retrying(
    peer: AmiPeer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.auth_fail_delay = 0.2
    link = make_link(peer.port, secret="wrongsecret")
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        await link.connect(timeout=3)
    assert link.state is LinkState.AUTH_FAILED
    with pytest.raises(AmiAuthError):
        await link.run()  # what `ctiserver run` awaits: it must exit non-zero
    await asyncio.sleep(0.3)
    assert peer.connections == 1, "a refused secret is not retried"
    assert any("refused the login" in r.message for r in caplog.records)
    await link.close()
    with pytest.raises(LinkDown):
        await link.action("Ping")


async def test_login_refused_while_asterisk_shuts_down_is_retried(peer: AmiPeer) -> None:
    """During `core restart gracefully` Asterisk answers a new session's Login "Asterisk is shutting
    down" (capture 18 AMI2): not the credentials, so the link retries instead of giving up for good
    (which made `ctiserver run` exit)."""
    refusal = recorded_reply("18", "cap2-001", "AMI2")

    def refuse_once(m: Message) -> list[bytes]:
        del peer.custom["Login"]
        return refusal

    peer.custom["Login"] = refuse_once
    link = make_link(peer.port)
    try:
        await link.connect(timeout=3)
        assert link.state is LinkState.UP
        assert link.auth_error is None
        assert peer.connections == 2 and peer.logins == 1
    finally:
        await link.close()


async def test_ping_refused_while_asterisk_shuts_down_keeps_the_link(peer: AmiPeer) -> None:
    """Every action, Ping included, is refused during a graceful restart while the session keeps its
    events (capture 18): the calls Asterisk waits for end on this link, so it must stay up."""
    refusal = recorded_reply("18", "cap-002")
    events: list[Message] = []
    link = make_link(peer.port, ping_interval=0.05, on_event=events.append)
    await link.connect(timeout=3)
    try:
        peer.custom["Ping"] = lambda m: refusal
        async with asyncio.timeout(3):
            while len(peer.actions("Ping")) < 4:
                await asyncio.sleep(0.01)
        hangup = next(r.payload for r in capture("18") if r.payload.startswith(b"Event: Hangup\r\n"))
        peer.push(hangup)
        async with asyncio.timeout(3):
            while not [e for e in events if e.event == "Hangup"]:
                await asyncio.sleep(0.01)
        assert link.state is LinkState.UP
        assert peer.connections == 1, "the link was not dropped"
    finally:
        await link.close()


async def test_action_error_carries_the_message(peer: AmiPeer) -> None:
    peer.custom["Hangup"] = lambda m: recorded_reply("01", "ami1-008")  # "No channel specified"
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        with pytest.raises(AmiActionError) as info:
            await link.action("Hangup")
        assert info.value.message == "No channel specified"
        pong = await link.ping()
        assert pong["Ping"] == "Pong"
    finally:
        await link.close()


async def test_list_action_collects_until_complete(peer: AmiPeer) -> None:
    seen: list[Message] = []
    link = make_link(peer.port, on_event=seen.append)
    await link.connect(timeout=3)
    try:
        resp, items = await link.list_action("CoreShowChannels")
        assert resp["Message"] == "Channels will follow"
        assert [e.event for e in items] == ["CoreShowChannel", "CoreShowChannel"]
        assert items[0]["Channel"].endswith(";1") and items[1]["BridgeId"] == ""
        resp, items = await link.list_action("Status")
        assert len(items) == 2 and items[0]["BridgeID"] == ""
        # List items belong to the action, not to the live event stream.
        assert not [e for e in seen if e.event in ("CoreShowChannel", "Status", "StatusComplete")]
    finally:
        await link.close()


async def test_action_timeout_then_late_response_dropped(peer: AmiPeer) -> None:
    peer.silent.update({"Getvar", "QueueSummary"})
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        with pytest.raises(ActionTimeout) as info:
            await link.action("Getvar", {"Channel": "x", "Variable": "y"}, timeout=0.2)
        late_id = info.value.action_id
        # The late response arrives now: it must be dropped without disturbing the next action.
        peer.push(with_action_id(recorded_reply("01", "ami1-014")[0], late_id))
        with pytest.raises(ActionTimeout):
            await link.list_action("QueueSummary", timeout=0.2)  # never answered
        assert (await link.ping())["Ping"] == "Pong"
        assert link.state is LinkState.UP
    finally:
        await link.close()


async def test_unsafe_value_refused_before_sending(peer: AmiPeer) -> None:
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        before = len(peer.raw)
        with pytest.raises(UnsafeValue):
            await link.action(
                "Setvar", {"Channel": "PJSIP/1001-1", "Variable": "X", "Value": "a\r\nAction: Hangup"}
            )
        await link.ping()
        assert b"Hangup" not in bytes(peer.raw[before:])
    finally:
        await link.close()


async def test_originate_returns_the_matching_originate_response(peer: AmiPeer) -> None:
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        ok, busy = await asyncio.gather(
            link.originate(
                {"Channel": "Local/agent-long@agents", "Context": "agent-ready", "Exten": "s"},
                event_timeout=2,
            ),
            link.originate(
                {"Channel": "Local/busy@agents", "Context": "agent-ready", "Exten": "s"}, event_timeout=2
            ),
        )
        assert ok["Response"] == "Success" and ok["Reason"] == "4"
        assert busy["Response"] == "Failure" and busy["Reason"] == "5"
        sent = peer.actions("Originate")
        assert all(m["Async"] == "true" for m in sent)
        assert {m["ActionID"] for m in sent} == {ok["ActionID"], busy["ActionID"]}
    finally:
        await link.close()


async def test_pending_actions_fail_fast_with_link_down_and_link_reconnects(peer: AmiPeer) -> None:
    peer.silent.add("Getvar")
    resyncs: list[int] = []

    async def resync(link: AmiLink) -> None:
        _resp, items = await link.list_action("CoreShowChannels")
        resyncs.append(len(items))

    link = make_link(peer.port, on_connected=resync)
    await link.connect(timeout=3)
    try:
        pending = asyncio.ensure_future(link.action("Getvar", {"Channel": "x", "Variable": "y"}, timeout=30))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        peer.drop_all()
        with pytest.raises(LinkDown):
            await pending
        assert loop.time() - t0 < 1.0, "a dropped link fails pending actions at once, not at their timeout"
        await asyncio.sleep(0.01)
        with pytest.raises(LinkDown):
            await link.action("Ping")  # not logged in while reconnecting
        async with asyncio.timeout(3):
            while link.connects < 2:
                await asyncio.sleep(0.01)
        assert link.state is LinkState.UP
        assert resyncs == [2, 2], "the resync hook runs on every (re)connect"
        assert peer.logins == 2
    finally:
        await link.close()


async def test_pbx_down_at_start_retries_with_backoff_then_connects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ctiserver.ami.link")
    port = free_port()
    link = make_link(port, backoff_min=0.05, backoff_max=0.4)
    link.start()
    await asyncio.sleep(0.8)
    failures = [r for r in caplog.records if "cannot connect" in r.getMessage()]
    assert 2 <= len(failures) <= 12, "retries with growing delays, one log line per failure"
    assert link.state is LinkState.CONNECTING
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].split()[0]) for r in failures]
    assert max(delays) <= 0.4 and delays[-1] >= delays[0]
    peer = await AmiPeer().start(port)
    try:
        await link.wait_up(timeout=3)
        assert peer.logins == 1
    finally:
        await link.close()
        await peer.close()


async def test_missing_pong_declares_the_link_dead_and_reconnects(
    peer: AmiPeer, caplog: pytest.LogCaptureFixture
) -> None:
    link = make_link(peer.port, ping_interval=0.1, ping_timeout=0.15)
    await link.connect(timeout=3)
    try:
        peer.silent.add("Ping")  # half-open: TCP alive, nobody answering
        async with asyncio.timeout(3):
            while peer.connections < 2:
                await asyncio.sleep(0.02)
        assert any("no Pong" in r.getMessage() for r in caplog.records)
        peer.silent.discard("Ping")
        await link.wait_up(timeout=3)
    finally:
        await link.close()


async def test_malformed_and_truncated_frames_are_skipped(
    peer: AmiPeer, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Message] = []
    link = make_link(peer.port, on_event=events.append)
    await link.connect(timeout=3)
    try:
        hangup = next(r.payload for r in capture("03") if r.payload.startswith(b"Event: Hangup\r\n"))
        peer.push(b"this is not a header\r\n\r\n")  # no Key: Value at all
        peer.push(hangup[:100])  # truncated: the rest arrives in a later read
        await asyncio.sleep(0.05)
        peer.push(hangup[100:])
        peer.push(
            b"Event: Weird\r\nno colon here\r\nFoo: bar\r\n\r\n"
        )  # partly malformed: kept, bad line noted
        await link.ping()
        names = [e.event for e in events]
        assert "Hangup" in names and "Weird" in names
        got = next(e for e in events if e.event == "Hangup")
        assert got == parse_frame(hangup[:-4]) and got["Cause-txt"]
        assert any("malformed" in r.getMessage() for r in caplog.records)
        assert link.state is LinkState.UP and peer.connections == 1
    finally:
        await link.close()


async def test_oversized_frame_drops_and_resyncs(peer: AmiPeer) -> None:
    resyncs = 0

    async def resync(link: AmiLink) -> None:
        nonlocal resyncs
        resyncs += 1

    link = make_link(peer.port, on_connected=resync, max_frame=4096)
    await link.connect(timeout=3)
    try:
        peer.push(b"Event: Huge\r\nData: " + b"x" * 10000)
        async with asyncio.timeout(3):
            while link.connects < 2:
                await asyncio.sleep(0.01)
        assert resyncs == 2 and peer.connections == 2
    finally:
        await link.close()


async def test_a_failing_event_handler_does_not_stop_the_read_loop(peer: AmiPeer) -> None:
    got: list[str] = []

    def broken(msg: Message) -> None:
        raise RuntimeError("consumer bug")

    link = make_link(peer.port, on_event=[broken, lambda m: got.append(m.event or "")])
    await link.connect(timeout=3)
    try:
        peer.push(ami_received(capture("04"))[len(b"Asterisk Call Manager/11.0.0\r\n") :])
        await link.ping()
        assert "BridgeEnter" in got and link.state is LinkState.UP
    finally:
        await link.close()


async def test_resync_failure_drops_and_retries(peer: AmiPeer) -> None:
    calls = 0

    peer.silent.add("QueueSummary")

    async def resync(link: AmiLink) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await link.list_action("QueueSummary", timeout=0.1)  # times out: resync failed

    link = make_link(peer.port, on_connected=resync)
    await link.connect(timeout=3)
    try:
        assert calls == 2 and peer.connections == 2 and link.connects == 1
    finally:
        await link.close()


async def test_pool_keys_links_by_pbx_and_reports_auth_failure() -> None:
    good, bad = await AmiPeer().start(), await AmiPeer(secret="other").start()
    pool = AmiPool(
        [
            make_link(good.port),
        ]
    )
    pool.add(AmiLink("pbx2", "127.0.0.1", bad.port, "cti", "ctisecret", backoff_min=0.05, backoff_max=0.1))
    with pytest.raises(ValueError):
        pool.add(make_link(good.port))
    try:
        pool.start()
        with pytest.raises(AmiAuthError):
            await pool.wait_up(timeout=3)
        assert pool["pbx1"].state is LinkState.UP
        assert pool.states()["pbx2"] is LinkState.AUTH_FAILED
        with pytest.raises(KeyError, match="pbx9"):
            pool["pbx9"]
        with pytest.raises(AmiAuthError):
            await pool.run()
    finally:
        await pool.close()
        await good.close()
        await bad.close()


async def test_list_action_error_and_sync_originate_failure(peer: AmiPeer) -> None:
    peer.custom["Status"] = lambda m: [b"Response: Error\r\nActionID: x\r\nMessage: No such channel\r\n\r\n"]
    peer.custom["Originate"] = lambda m: recorded_reply("05", "ami1-013")  # capture 05 E: "Originate failed"
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        with pytest.raises(AmiActionError, match="No such channel"):
            await link.list_action("Status", {"Channel": "PJSIP/nobody-1"})
        with pytest.raises(AmiActionError, match="Originate failed"):
            await link.originate(
                {"Channel": "Local/busy@agents", "Context": "agent-ready", "Exten": "s"}, event_timeout=2
            )
        assert link.state is LinkState.UP
    finally:
        await link.close()


async def test_link_drop_during_list_action_fails_it(peer: AmiPeer) -> None:
    peer.custom["CoreShowChannels"] = lambda m: recorded_reply("01", "ami1-011")[:2]  # response, no Complete
    link = make_link(peer.port)
    await link.connect(timeout=3)
    try:
        pending = asyncio.ensure_future(link.list_action("CoreShowChannels", timeout=30))
        await asyncio.sleep(0.1)
        assert not pending.done()
        link.drop("test")
        with pytest.raises(LinkDown):
            await pending
        await link.wait_up(timeout=3)
    finally:
        await link.close()


async def test_resync_hook_snapshot_on_every_connect(peer: AmiPeer) -> None:
    snapshots: list[PbxSnapshot] = []
    link = make_link(
        peer.port, on_connected=resync_hook(snapshots.append, variables=("CTI_CALL", "IVR_DONE"))
    )
    await link.connect(timeout=3)
    try:
        snap = snapshots[0]
        assert snap.pbx == "pbx1" and len(snap.channels) == 2 and len(snap.status) == 2
        assert snap.channels[1]["Application"] == "MusicOnHold"
        assert peer.actions("Status")[0]["Variables"] == "CTI_CALL,IVR_DONE"
        peer.drop_all()
        async with asyncio.timeout(3):
            while len(snapshots) < 2:
                await asyncio.sleep(0.01)
    finally:
        await link.close()


async def test_resync_reads_the_pbx_contacts_and_no_answer_about_them_stops_it(peer: AmiPeer) -> None:
    """PJSIPShowContacts at every connect (capture 33): a list; none at all is Asterisk's error 'No Contacts
    found' (an empty list, not a failed resync); a PBX that refuses the action (no res_pjsip, no permission)
    or never answers it leaves the contacts unknown, and the link comes up all the same."""
    snapshots: list[PbxSnapshot] = []
    link = make_link(peer.port, on_connected=resync_hook(snapshots.append, timeout=0.5))

    async def next_snapshot() -> PbxSnapshot:
        n = len(snapshots)
        peer.drop_all()
        async with asyncio.timeout(5):
            while len(snapshots) == n or not link.is_up:
                await asyncio.sleep(0.01)
        return snapshots[-1]

    await link.connect(timeout=3)
    try:
        contacts = snapshots[0].contacts
        assert contacts is not None and [(c["Endpoint"], c["Status"]) for c in contacts] == [("1002", "Reachable")]
        peer.custom["PJSIPShowContacts"] = lambda m: recorded_reply("33", "contacts-1")
        assert (await next_snapshot()).contacts == ()
        peer.custom["PJSIPShowContacts"] = lambda m: recorded_reply("01", "ami1-007")  # Invalid/unknown command
        assert (await next_snapshot()).contacts is None
        del peer.custom["PJSIPShowContacts"]
        peer.silent.add("PJSIPShowContacts")
        snap = await next_snapshot()
        assert snap.contacts is None and len(snap.channels) == 2
    finally:
        await link.close()


def test_snapshot_variables_from_status_lines() -> None:
    status = recorded_reply("01", "ami1-013")  # Status of one channel with Variables:
    msgs = [m for m in AmiParser(expect_greeting=False).feed(b"".join(status)) if isinstance(m, Message)]
    snap = PbxSnapshot("pbx1", (), tuple(m for m in msgs if m.event == "Status"), 0.0)
    assert snap.variables("1795389313.11") == {"CALLERID(num)": "5551234", "CHANNEL(musicclass)": ""}
    assert snap.variables("nope") == {}
