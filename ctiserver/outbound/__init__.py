"""Outbound: calls the centre places itself. Click-to-call tracked from the agent's ring to its outcome,
callbacks as tasks (from the IVR, a queue's timeout, a supervisor, the web callback API), dialled when the
ACD hands them to an agent or when their time comes. Pure parts: `states` (the outbound call's table and
outcomes from the Originate), `callbacks` (the callback book, folded from facts), `web` (the web API's
checks). Edges: `dialling` (the AMI side), `service` (the timers), `http` (the web API listener)."""
