"""Studio: its event handlers and projection (course run schedules published by Publisher)."""
