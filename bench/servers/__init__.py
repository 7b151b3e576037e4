"""Tiny servers for the raw baselines (each runs in its own process on 127.0.0.1)."""
