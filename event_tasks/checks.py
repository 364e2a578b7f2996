"""Django system checks of the fabric's settings (registered when the Django app is ready)."""
