"""The demo: a scenario that drives every use case through the fabric (see scenario.py)."""
