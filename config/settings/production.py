"""Production: secrets and addresses come from the environment (or ``<NAME>_FILE``); refuse to start without them.

A missing one stops the process at once with one line naming it (``SystemExit``: no traceback, exit status 1).
"""

from .base import *  # noqa: F403
from .base import env, env_secret


def required(value: str | None, message: str) -> str:
    if not value:
        raise SystemExit(f"config.settings.production: {message}")
    return value


DEBUG = False  # whatever DJANGO_DEBUG says
SECRET_KEY = required(env_secret("DJANGO_SECRET_KEY"), "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set")
ALLOWED_HOSTS = required(
    env("DJANGO_ALLOWED_HOSTS"), "DJANGO_ALLOWED_HOSTS (the admin's host names, comma-separated) must be set"
).split(",")
required(env("CELERY_BROKER_URL"), "CELERY_BROKER_URL must be set in production (redis://… or amqp://…)")
required(env("DATABASE_URL"), "DATABASE_URL must be set in production (each service has its own database)")
# Flower reads FLOWER_BASIC_AUTH itself (`celery flower` also takes --basic-auth or --conf=<file>).
required(env("FLOWER_BASIC_AUTH"), "FLOWER_BASIC_AUTH (user:password) must be set in production")
# A Redis that can lose queued events (no AOF, eviction) is refused at worker start.
EVENT_TASKS_REQUIRE_DURABLE_BROKER = True
# `events metrics` refuses to start without EVENT_TASKS_METRICS_AUTH (or EVENT_TASKS_METRICS_AUTH_FILE).
EVENT_TASKS_REQUIRE_ENDPOINT_AUTH = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
