"""Probes and metrics that decide whether a new version may go live."""
