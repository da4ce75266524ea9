"""The queueing slice: the ACD's decisions carried out on the PBX (waiting callers, offers to agents,
transfers and consultations), and its events recorded as facts."""
