"""The pure half of launching: the script contract, the Job spec, reading Job status, per-worker shares of a
service's concurrency, what may be cleaned up."""
