"""The alerts slice: the figures of the queues and the agents judged against their targets (queues.yaml);
alerts raised and cleared as journaled facts (`alert.raised`, `alert.cleared`), which the consoles push to
the supervisors and the projector keeps across a restart."""
