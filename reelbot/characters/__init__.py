"""Characters: a person trained once at a provider and reused in videos."""
