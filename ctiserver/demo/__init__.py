"""`ctiserver demo`: the server beside the PBX simulator, with demo queues, flows and callers."""
