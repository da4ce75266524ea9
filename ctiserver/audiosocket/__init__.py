"""Asterisk AudioSocket: the caller's voice streamed to the server in 20 ms frames (speech menus)."""
