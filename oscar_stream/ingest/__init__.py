"""Edge processes that bring storage notifications in: the webhook gateway and the dCache watcher."""
