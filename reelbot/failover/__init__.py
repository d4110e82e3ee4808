"""Failover: provider health, where a request may go, and the shared health book."""
