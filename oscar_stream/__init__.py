"""oscar-stream: storage events -> Kafka -> Kubernetes Jobs, for serverless scientific pipelines."""

__version__ = "0.1.0"
