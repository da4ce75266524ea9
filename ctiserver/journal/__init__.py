"""The journal: the append-only, durable record of the centre's facts (their kinds and codec, and the
batched store)."""
