"""Digests: the notifier's learner digests (its own task) and certificate notes (from LMS events)."""
