"""The metrics slice: the centre's figures in Prometheus's text format, served at /metrics by the console
gateway (docs/metrics.md lists every metric)."""
