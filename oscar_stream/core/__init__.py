"""The kernel every stage shares: the canonical event, invocations, results, ids, times and errors. No I/O."""
