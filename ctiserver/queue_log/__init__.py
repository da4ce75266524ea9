"""The queue_log projection: lines in Asterisk's grammar, and the file they are appended to."""
