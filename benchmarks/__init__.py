"""Benchmarks of the real poller, store and delivery against the local doubles.

``python benchmarks/poller.py --help`` is the entry point; see the README's
"Benchmarks" section for what it measures and the figures on a 2-core machine.
"""
