"""FastAGI: the wire protocol (pure), the peers allowed to connect, the server and one session per call."""
