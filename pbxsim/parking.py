"""res_parking as the captures show it (07 F): AMI Park moves a bridged caller into the lot's holding bridge
on music, ParkedCalls lists it, and a channel running ParkedCall(<lot>,<space>) (an agent leg originated
into ``parkedcalls,<space>``) retrieves it into a new two-party bridge (UnParkedCall).

Not simulated: the parking timeout's call-back to the parker (comebacktoorigin); a parked call simply stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxsim import wire
from pbxsim.channels import Bridge, Channel, new_bridge_id
from pbxsim.dialplan import Context, Extension, Step
from pbxsim.world import World

LOT = "default"
CONTEXT = "parkedcalls"
SPACES = tuple(str(n) for n in range(701, 721))  # res_parking.conf parkpos = 701-720
TIMEOUT = 45  # parkingtime


@dataclass(slots=True)
class Parked:
    parkee: Channel
    space: str
    parker_dial: str
    since: float


class ParkingLot:
    def __init__(self, world: World) -> None:
        self.world = world
        self.bridge: Bridge | None = None
        self.calls: dict[str, Parked] = {}

    def _holding_bridge(self) -> Bridge:
        if self.bridge is None or self.bridge.uniqueid not in self.world.bridges:
            bridge = Bridge(new_bridge_id(), kind="parking", technology="holding_bridge", creator="Parking", name=LOT,
                            persistent=True)
            self.world.bridges[bridge.uniqueid] = bridge
            self.world.emit(wire.event("BridgeCreate", bridge.pairs()))
            self.bridge = bridge
        return self.bridge

    def timing(self, parked: Parked) -> list[tuple[str, str]]:
        held = int(self.world.vnow() - parked.since)
        return [("ParkerDialString", parked.parker_dial), ("Parkinglot", LOT), ("ParkingSpace", parked.space),
                ("ParkingTimeout", str(max(0, TIMEOUT - held))), ("ParkingDuration", str(held))]

    def park(self, chan: Channel, parker: Channel | None) -> str | None:
        """AMI Park of a bridged channel; returns the space, or None when the lot is full."""
        w = self.world
        space = next((s for s in SPACES if s not in self.calls), None)
        if space is None:
            return None
        old = chan.bridge
        if parker is None and old is not None:
            parker = next((c for c in old.channels if c is not chan), None)
        parker_name = parker.name if parker is not None else ""
        # The park is a blind transfer to the lot: BLINDTRANSFER names the parker (07 F).
        w.set_var(chan, "BLINDTRANSFER", parker_name)
        lot = self._holding_bridge()
        w.set_var(chan, "BLINDTRANSFER", parker_name)
        if old is not None:
            w.leave_bridge(chan, clear_peers=False)
        dial = parker_name.rsplit("-", 1)[0] if parker is not None else ""
        parked = Parked(chan, space, dial, w.vnow())
        self.calls[space] = parked
        ctx = w.dialplan.contexts.setdefault(CONTEXT, Context(CONTEXT))
        ctx.extensions[space] = Extension(space, {1: Step(1, "ParkedCall", f"{LOT},{space}", None, "res_parking")})
        w.emit(wire.event("ParkedCall", chan.snapshot("Parkee"), self.timing(parked)))
        w.device_state(f"park:{space}@{CONTEXT}", "INUSE")
        w.enter_bridge(lot, chan)
        w.set_var(chan, "BRIDGEPEER", "")
        chan.moh = "default"
        w.chan_event("MusicOnHoldStart", chan, ("Class", "default"))
        if old is not None and old.channels:
            w.spawn(w.release_bridge_rest(old))
        return space

    def list_items(self, action_id: str | None) -> list[wire.Pairs]:
        items = []
        for parked in self.calls.values():
            pairs: wire.Pairs = [("Event", "ParkedCall")] + parked.parkee.snapshot("Parkee") + self.timing(parked)
            if action_id is not None:
                pairs.append(("ActionID", action_id))
            items.append(pairs)
        return items

    def retrieve(self, retriever: Channel, space: str) -> Bridge | None:
        """ParkedCall(): the parkee leaves the lot and is bridged with the retriever (07 F)."""
        w = self.world
        parked = self.calls.pop(space, None)
        ctx = w.dialplan.contexts.get(CONTEXT)
        if ctx is not None:
            ctx.extensions.pop(space, None)
        if parked is None or parked.parkee.dead:
            return None
        parkee = parked.parkee
        timing = self.timing(parked)
        bridge = w.create_bridge()
        if parkee.moh is not None:
            parkee.moh = None
            w.chan_event("MusicOnHoldStop", parkee)
        w.device_state(f"park:{space}@{CONTEXT}", "NOT_INUSE")
        w.leave_bridge(parkee, clear_peers=False)
        w.enter_bridge(bridge, parkee)
        w.enter_bridge(bridge, retriever)
        w.set_bridgepeers(bridge)
        w.set_connected(retriever, parkee.cid_name, parkee.cid_num)
        w.propagate_connected(retriever, parkee.cid_name, parkee.cid_num)
        w.set_connected(parkee, retriever.cid_name, retriever.cid_num)
        w.propagate_connected(parkee, retriever.cid_name, retriever.cid_num)
        w.emit(wire.event("UnParkedCall", parkee.snapshot("Parkee"), retriever.snapshot("Retriever"), timing))
        return bridge

