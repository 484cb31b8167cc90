"""raw store notification -> canonical events (pure: the worker does the I/O around it)."""
