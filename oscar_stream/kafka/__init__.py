"""Kafka I/O: clients built from the settings, topic administration."""
