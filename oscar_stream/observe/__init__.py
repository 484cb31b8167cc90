"""Metrics and health endpoints; the terminal view (`oscar-stream top`)."""
