"""The consoles slice: the gateway's backend (agent and supervisor commands recorded as facts), the views a
console reads (projections of the router and the call records) and the pushes it gets."""
