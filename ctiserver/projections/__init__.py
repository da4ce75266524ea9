"""Everything computed from the journal: the projector (router, day statistics, call records, queue_log
lines), the recorder that journals then projects each fact, recovery at start, and replay."""
