"""Outbound campaigns: the dialer service (docs/outbound.md, Running a campaign)."""
