"""The IVR slice: FastAGI entry points that run the YAML flows, and the services a flow calls (CRM look-ups,
queueing, voicemail, callbacks, surveys), each step journaled."""
