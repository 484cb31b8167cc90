"""Warm replicas: long-lived copies of a service that run its script per request, with the job contract."""
