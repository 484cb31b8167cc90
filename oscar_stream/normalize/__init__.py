"""raw store notification -> canonical :class:`StorageEvent`s (pure code; the agent is the only I/O)."""
