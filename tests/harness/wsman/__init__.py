"""Loopback WS-Management server with a stateful Hyper-V behind it (test harness)."""
