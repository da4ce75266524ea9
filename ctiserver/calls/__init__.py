"""The calls slice: AMI links to each PBX, the call model fed by their events, and the call facts journaled
from it (arrived, connected, ended observed or inferred); resync after a link outage or a PBX restart."""
