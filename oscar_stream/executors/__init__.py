"""Where jobs run: one process per invocation here, one batch/v1 Job on Kubernetes, or another cluster."""
