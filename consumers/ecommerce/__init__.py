"""Ecommerce: its event handlers and projection (orders and enrollments from the LMS)."""
