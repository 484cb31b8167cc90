"""The runtime that wires the stages to Kafka: the worker app, its agents, the services table, health."""
