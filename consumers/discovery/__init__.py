"""Course discovery: its event handlers and projection (Studio's course runs, LMS enrollment counts)."""
