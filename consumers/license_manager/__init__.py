"""License manager: its event handlers and projection (license-backed enterprise enrollments)."""
