"""The worker half: what happens to a task after the request half stored it."""
