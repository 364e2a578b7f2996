"""Credentials: its event handlers and projection (certificates, grades, intents, catalog mirror)."""
