"""Administration from the console: accounts, agents' skills and queues, pause reasons, business hours and
holidays. Each change is validated by the loader that reads the file at start, written atomically, applied
to the running server and journaled (with an audit row)."""
