"""The local stack of real servers (Kafka, versitygw, Prometheus, Kubernetes) for the demo and the tests."""
