"""The test suite: same as local, quicker retries so retry/dead-letter tests finish fast."""

from .base import *  # noqa: F403
from .base import env_float, env_int

EVENT_TASKS_MAX_RETRIES = env_int("EVENT_TASKS_MAX_RETRIES", 3)
EVENT_TASKS_RETRY_BACKOFF = env_float("EVENT_TASKS_RETRY_BACKOFF", 0.2)
EVENT_TASKS_RETRY_BACKOFF_MAX = env_float("EVENT_TASKS_RETRY_BACKOFF_MAX", 1.0)
EVENT_TASKS_PUBLISH_TIMEOUT = env_float("EVENT_TASKS_PUBLISH_TIMEOUT", 0.5)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

from .base import env  # noqa: E402

# Where the fabric tests' probe services record what they saw (tests/fabric/services).
TEST_RECORD_DIR = env("TEST_RECORD_DIR", "/tmp")

# A second database alias for the outbox tests (``transaction.atomic(using="other")``); pytest-django
# creates its test database only for tests that ask for it (``databases=["default", "other"]``).
DATABASES["other"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "other.sqlite3")}  # noqa: F405
