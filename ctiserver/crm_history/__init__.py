"""The CRM history slice: call records built from the facts (pure) and their rows written in the journal's
batches."""
