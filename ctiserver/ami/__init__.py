"""AMI: the wire protocol (pure), one link per PBX with action timeouts and a keep-alive, and the resync
that rebuilds the channels after a reconnect."""
