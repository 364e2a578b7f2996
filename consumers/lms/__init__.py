"""LMS: its event handlers and projection (exam outcomes, learner licenses, published runs)."""
