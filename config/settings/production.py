"""Production: secrets and addresses come from the environment; refuse to start without them."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
if not env("CELERY_BROKER_URL"):
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set in production (redis://… or amqp://…)")
if not env("DATABASE_URL"):
    raise ImproperlyConfigured("DATABASE_URL must be set in production (each service has its own database)")
if not env("FLOWER_BASIC_AUTH"):
    raise ImproperlyConfigured("FLOWER_BASIC_AUTH (user:password) must be set in production")
# A Redis that can lose queued events (no AOF, eviction) is refused at worker start.
EVENT_TASKS_REQUIRE_DURABLE_BROKER = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
