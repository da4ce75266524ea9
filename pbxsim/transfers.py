"""AMI Atxfer as Asterisk 22 does it (capture 06 C): the transferer's feature code and the target's digits
arrive as queued DTMF, the transferer is put on hold (the transferee hears music), a Local channel
``Local/<exten>@<context>`` rings the target in a second bridge with the transferer, and when the
transferer hangs up the two bridges merge (BridgeMerge, AttendedTransfer) and the transferee talks to the
target.
"""

from __future__ import annotations

import asyncio
from functools import partial

from pbxsim import wire
from pbxsim.channels import Bridge, Channel
from pbxsim.world import World

ATXFER_CODE = "*2"  # features.conf [featuremap] atxfer (README of the captures)
DIGIT_GAP = 0.1  # virtual seconds between queued digits (capture 06 C: 60-150 ms)
NO_ANSWER_TIMEOUT = 15.0  # features.conf atxfernoanswertimeout


async def attended_transfer(w: World, transferer: Channel, exten: str, context: str) -> None:
    first = transferer.bridge
    if first is None:
        return
    transferee = next((c for c in first.channels if c is not transferer), None)
    w.set_var(transferer, "TRANSFER_CONTEXT", context)
    for i, digit in enumerate(ATXFER_CODE + exten):
        if i:
            await w.sleep(DIGIT_GAP)
        if transferer.dead or transferer.hungup:
            return
        w.receive_dtmf(transferer, digit, 100, begin=False)  # queued digits: DTMFEnd only (README)
        if i == len(ATXFER_CODE) - 1:
            w.chan_event("Hold", transferer)
            if transferee is not None and transferee.moh is None:
                transferee.moh = "default"
                w.chan_event("MusicOnHoldStart", transferee, ("Class", "default"))
    if not w.dialplan.exists(context, exten):
        return  # Asterisk drops an undialable atxfer target silently (06: "agent-long fails silently")

    one, two = w.new_local_pair(exten, context, linkedid=transferer.linkedid)
    w.chan_event("Newchannel", one)
    w.chan_event("Newchannel", two)
    w.set_var(one, "TRANSFERERNAME", transferer.name)
    w.set_var(one, "ATTENDEDTRANSFER", transferer.name)
    second = w.create_bridge()
    second.merge_on_hangup = partial(merge_after_transferer_left, w, first)
    w.set_var(two, "ATTENDEDTRANSFER", transferer.name)
    w.set_var(two, "TRANSFERERNAME", transferer.name)
    w.set_callerid(two, transferer.cid_name, transferer.cid_num)
    w.emit(wire.event("LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), [
        ("Context", context), ("Exten", exten), ("LocalOptimization", "Yes")]))
    w.start_pbx(two)
    # The target rings inside the second bridge with the transferer (06 C).
    await _wait_state(w, one, (5, 6), NO_ANSWER_TIMEOUT)
    if one.state == 5 or one.state == 6:
        w.set_connected(one, transferer.cid_name, transferer.cid_num)
    w.enter_bridge(second, one)
    if one.variables.get("ATTENDEDTRANSFER"):
        w.set_var(one, "ATTENDEDTRANSFER", "")
    if one.state == 5:
        w.emit(wire.event("DialState", one.snapshot("Dest"), [("DialStatus", "RINGING")]))
        w.device_state(one.device, "INUSE")
    one.dialstring = f"{exten}@{context}"  # from here on its answer reports DialEnd (06 C)
    if transferer.bridge is not None:
        w.leave_bridge(transferer, clear_peers=False)
    w.enter_bridge(second, transferer)
    w.set_bridgepeers(second)
    w.set_connected(transferer, one.cid_name, one.cid_num)
    w.propagate_connected(transferer, one.cid_name, one.cid_num)
    answered = await _wait_state(w, one, (6,), NO_ANSWER_TIMEOUT)
    one.dialstring = ""  # answered or given up: from now on it is an ordinary bridged leg
    if answered and not transferer.dead:
        w.set_bridgepeers(second)  # the answer re-publishes the peers (06 C)
        return
    # No answer: the target is dropped and the transferer goes back to the transferee.
    if not one.dead:
        w.queue_hangup(one, 19)
    if not transferer.dead and not transferer.hungup and transferer.bridge is second:
        w.leave_bridge(transferer, clear_peers=False)
        w.enter_bridge(first, transferer)
        w.set_bridgepeers(first)
        if transferee is not None and transferee.moh is not None:
            transferee.moh = None
            w.chan_event("MusicOnHoldStop", transferee)
        w.chan_event("Unhold", transferer)


async def _wait_state(w: World, chan: Channel, states: tuple[int, ...], seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds * w.time_scale
    while chan.state not in states:
        if chan.dead or chan.hungup:
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        chan._signal.clear()
        try:
            await asyncio.wait_for(chan._signal.wait(), remaining)
        except TimeoutError:
            return False
    return True


def merge_after_transferer_left(w: World, first: Bridge, second: Bridge, transferer: Channel) -> None:
    """The transferer hung up in the second bridge: merge it into the first (BridgeMerge, AttendedTransfer)."""
    if first.uniqueid not in w.bridges:
        return
    second.merge_on_hangup = None
    w.emit(wire.event("BridgeMerge", first.pairs("To"), second.pairs("From")))
    for target in list(second.channels):
        second.channels.remove(target)
        target.bridge = None
        w.emit(wire.event("BridgeLeave", second.pairs(), target.snapshot()))
        for c in first.channels:
            if c.moh is not None:
                c.moh = None
                w.chan_event("MusicOnHoldStop", c)
        w.enter_bridge(first, target)
        w.set_bridgepeers(first)
        transferee = next((c for c in first.channels if c is not target), None)
        w.emit(wire.event(
            "AttendedTransfer", [("Result", "Success")], transferer.snapshot("OrigTransferer"),
            first.pairs("Orig"), transferer.snapshot("SecondTransferer"), second.pairs("Second"),
            transferee.snapshot("Transferee") if transferee is not None else [],
            target.snapshot("TransferTarget"),
            [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", first.uniqueid)]))
        if transferee is not None:
            transferee.cdr_extra += 1  # a new bridge peer opens a new record (06 C)
            t_name, t_num = target.cid_name, target.cid_num
            w.set_connected(target, transferee.cid_name, transferee.cid_num)
            w.set_connected(transferee, t_name, t_num)
            w.propagate_connected(target, transferee.cid_name, transferee.cid_num)
            w.propagate_connected(transferee, t_name, t_num)
        target.wake()
    w.destroy_bridge(second)
