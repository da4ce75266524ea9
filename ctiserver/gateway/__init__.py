"""The console gateway: websockets for agents and supervisors, sign-in and tokens (pure), the message
schema, and the backend interface the consoles slice implements."""
