"""invocation -> a job (local process or Kubernetes Job) -> result and output events."""
