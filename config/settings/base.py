"""Settings shared by every environment. The only place that reads the environment.

This demo project plays every service; ``EVENT_TASKS_SERVICE`` says which one a process is. A
service's process installs only its own consumer app (``consumers/<service>/``: its handlers,
its projection models, its admin pages) and uses its own database. A process without a service
(tooling: ``events declare`` at release, ``events catalog``, the unit tests) installs every
consumer app. Defaults run the demo on one machine (Redis on 127.0.0.1:6379, one SQLite file
per service under var/, created on first use).
"""

from __future__ import annotations

import json
import os
import pkgutil
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} must be a whole number") from None


def env_float(name: str, default: float) -> float:
    value = env(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} must be a number") from None


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} must be true or false")


def env_secret(name: str) -> str | None:
    """A secret from the environment: ``NAME``, else the contents of the file ``NAME_FILE`` (a mounted secret)."""
    value = env(name)
    path = env(f"{name}_FILE")
    if value is None and path is not None:
        try:
            value = Path(path).read_text().strip() or None
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read ({exc.strerror})") from None
    return value


SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or "insecure-local-development-key"
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = (env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1") or "").split(",")
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "config.urls"
STATIC_URL = "static/"

# --- which service this process is -------------------------------------------------------------
EVENT_TASKS_SERVICE = env("EVENT_TASKS_SERVICE")
# The demo's service apps live in one package (tests swap in probe services).
CONSUMERS_PACKAGE = env("EVENT_TASKS_CONSUMERS_PACKAGE", "consumers")
EVENT_TASKS_SCHEMAS_PACKAGE = env("EVENT_TASKS_SCHEMAS_PACKAGE", "schemas")
EVENT_TASKS_CELERY_APP = "config.celery_app:app"
EVENT_TASKS_MAX_RETRIES = env_int("EVENT_TASKS_MAX_RETRIES", 5)
EVENT_TASKS_RETRY_BACKOFF = env_float("EVENT_TASKS_RETRY_BACKOFF", 2.0)
EVENT_TASKS_RETRY_BACKOFF_MAX = env_float("EVENT_TASKS_RETRY_BACKOFF_MAX", 300.0)
EVENT_TASKS_PUBLISH_RETRIES = env_int("EVENT_TASKS_PUBLISH_RETRIES", 3)
EVENT_TASKS_PUBLISH_TIMEOUT = env_float("EVENT_TASKS_PUBLISH_TIMEOUT", 2.0)
EVENT_TASKS_MAX_PAYLOAD_BYTES = env_int("EVENT_TASKS_MAX_PAYLOAD_BYTES", 256 * 1024)
EVENT_TASKS_COMPILED_CODECS = env_bool("EVENT_TASKS_COMPILED_CODECS", True)
EVENT_TASKS_MAX_REDELIVERIES = env_int("EVENT_TASKS_MAX_REDELIVERIES", 3)
EVENT_TASKS_UNKNOWN_TYPE_WAIT = env_float("EVENT_TASKS_UNKNOWN_TYPE_WAIT", 900.0)
EVENT_TASKS_HANDLER_TIME_LIMIT = env_float("EVENT_TASKS_HANDLER_TIME_LIMIT", 1500.0)
EVENT_TASKS_RESTORE_INTERVAL = env_int("EVENT_TASKS_RESTORE_INTERVAL", 10)
EVENT_TASKS_RABBITMQ_CONSUMER_TIMEOUT = env_float("EVENT_TASKS_RABBITMQ_CONSUMER_TIMEOUT", 1800.0)
EVENT_TASKS_REQUIRE_DURABLE_BROKER = env_bool("EVENT_TASKS_REQUIRE_DURABLE_BROKER", False)
EVENT_TASKS_OUTBOX_GRACE = env_float("EVENT_TASKS_OUTBOX_GRACE", 2.0)
EVENT_TASKS_OUTBOX_RETENTION = env_float("EVENT_TASKS_OUTBOX_RETENTION", 7 * 24 * 3600.0)
EVENT_TASKS_OUTBOX_LEASE = env_float("EVENT_TASKS_OUTBOX_LEASE", 60.0)
EVENT_TASKS_OUTBOX_BACKOFF = env_float("EVENT_TASKS_OUTBOX_BACKOFF", 5.0)
EVENT_TASKS_OUTBOX_BACKOFF_MAX = env_float("EVENT_TASKS_OUTBOX_BACKOFF_MAX", 900.0)
# RabbitMQ's management API (`events topology verify`, `events status`); default: broker host, port 15672.
EVENT_TASKS_RABBITMQ_MANAGEMENT_URL = env("EVENT_TASKS_RABBITMQ_MANAGEMENT_URL")
# A broker cluster (docs/cluster.md): quorum queues on RabbitMQ; on Redis with Sentinel, replicas a send waits for.
EVENT_TASKS_QUEUE_TYPE = env("EVENT_TASKS_QUEUE_TYPE", "classic")
EVENT_TASKS_QUORUM_DELIVERY_LIMIT = env_int("EVENT_TASKS_QUORUM_DELIVERY_LIMIT", 100)
EVENT_TASKS_REDIS_WAIT_REPLICAS = env_int("EVENT_TASKS_REDIS_WAIT_REPLICAS", 0)
EVENT_TASKS_REDIS_WAIT_TIMEOUT = env_float("EVENT_TASKS_REDIS_WAIT_TIMEOUT", 1.0)
# The archive of sent events, for `events backfill` (docs/archive.md): days kept; unset, no archive.
EVENT_TASKS_ARCHIVE_DAYS = env_float("EVENT_TASKS_ARCHIVE_DAYS", 0.0) or None


def signing_keys_dir(directory: Path, service: str | None) -> dict[str, object]:
    """Signed envelopes (docs/signing.md) from a directory of keys: ``<service>.key`` (this service's
    private key, base64) and ``<service>.pub`` (every producer's public key); ``make demo`` writes them
    with ``events keys generate``, tests at run time. Ids are ``<service>-local``. None of them is ever committed."""
    found: dict[str, object] = {}
    if not directory.is_dir():
        return found
    if service and (directory / f"{service}.key").exists():
        found["EVENT_TASKS_SIGNING_KEY_FILE"] = str(directory / f"{service}.key")
        found["EVENT_TASKS_SIGNING_KEY_ID"] = f"{service}-local"
    public = {p.stem: {f"{p.stem}-local": p.read_text().strip()} for p in sorted(directory.glob("*.pub"))}
    if public:
        found["EVENT_TASKS_SIGNING_PUBLIC_KEYS"] = public
    return found


# Signed envelopes: a keys directory (the demo's), or each setting from its variable (the key as a value or
# a file; the public keys as JSON: {"lms": {"lms-2026-12": "<base64>"}}); the mode: off, warn or enforce.
_keys_dir = env("EVENT_TASKS_SIGNING_KEYS_DIR")
_signing = signing_keys_dir(Path(_keys_dir), EVENT_TASKS_SERVICE) if _keys_dir else {}
EVENT_TASKS_SIGNING_KEY = env("EVENT_TASKS_SIGNING_KEY")
EVENT_TASKS_SIGNING_KEY_FILE = env("EVENT_TASKS_SIGNING_KEY_FILE") or _signing.get("EVENT_TASKS_SIGNING_KEY_FILE")
EVENT_TASKS_SIGNING_KEY_ID = env("EVENT_TASKS_SIGNING_KEY_ID") or _signing.get("EVENT_TASKS_SIGNING_KEY_ID")
EVENT_TASKS_SIGNING_PUBLIC_KEYS = json.loads(env("EVENT_TASKS_SIGNING_PUBLIC_KEYS") or "null") or _signing.get(
    "EVENT_TASKS_SIGNING_PUBLIC_KEYS"
)
EVENT_TASKS_SIGNING_MODE = env("EVENT_TASKS_SIGNING_MODE")
EVENT_TASKS_BROKER_USERS = json.loads(env("EVENT_TASKS_BROKER_USERS") or "null")  # {"lms": "lms", ...}


def consumer_apps(package: str, service: str | None) -> list[str]:
    """The service's own app ``<package>.<service>`` (if it has one); every one without a service."""
    try:
        pkg = __import__(package, fromlist=["__path__"])
    except ImportError:
        raise ImproperlyConfigured(f"EVENT_TASKS_CONSUMERS_PACKAGE={package!r} cannot be imported") from None
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg)
    if service is not None:
        names = [n for n in names if n == service]
    return [f"{package}.{n}" for n in names]


INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "event_tasks",
    *consumer_apps(CONSUMERS_PACKAGE, EVENT_TASKS_SERVICE),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- each service has its own database ---------------------------------------------------------
VAR_DIR = Path(env("EVENT_TASKS_VAR_DIR", str(BASE_DIR / "var")))
_default_db = f"sqlite:///{VAR_DIR / ((EVENT_TASKS_SERVICE or 'tooling') + '.sqlite3')}"
# <SERVICE>_DATABASE_URL (e.g. LMS_DATABASE_URL) lets one environment file serve every Procfile line.
_db_url = (env(f"{EVENT_TASKS_SERVICE.upper()}_DATABASE_URL") if EVENT_TASKS_SERVICE else None) or env(
    "DATABASE_URL", _default_db
)


def database(url: str) -> dict:
    """One DATABASES entry for a URL, with the pool (PostgreSQL) or lock settings (SQLite) below."""
    db = dj_database_url.parse(url, conn_max_age=60)
    if db["ENGINE"].endswith("postgresql") and env_bool("DATABASE_POOL", True):
        # Django's connection pool (psycopg_pool): a worker's task gets a connection without connecting.
        db["CONN_MAX_AGE"] = 0
        db.setdefault("OPTIONS", {})["pool"] = True
    if db["ENGINE"].endswith("sqlite3"):
        # Several processes of one service (worker pool, relay, shell) share the file: wait for the
        # lock (timeout), take it when the transaction starts (IMMEDIATE: a deferred transaction that
        # later writes fails at once with "database is locked"), and let readers run beside the writer (WAL).
        # A handler's transaction holds the write lock: the wait stays well below the handler time limit,
        # so a delivery stuck behind a hung handler fails and is retried instead of being killed with it.
        db.setdefault("OPTIONS", {}).update(
            timeout=min(30.0, EVENT_TASKS_HANDLER_TIME_LIMIT / 2),
            transaction_mode="IMMEDIATE",
            init_command="PRAGMA journal_mode=WAL;",
        )
    return db


def demo_services() -> set[str]:
    """The demo's services: each consumer app of the package, and each service the Procfile runs."""
    procfile = BASE_DIR / "Procfile"
    named = (
        set(re.findall(r"EVENT_TASKS_SERVICE=([a-z][a-z0-9_]*)", procfile.read_text())) if procfile.exists() else set()
    )
    return named | {app.rsplit(".", 1)[1] for app in consumer_apps(CONSUMERS_PACKAGE, None)}


if (
    _db_url == _default_db
    and EVENT_TASKS_SERVICE
    and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", EVENT_TASKS_SERVICE)  # a malformed name: the library says so
    and EVENT_TASKS_SERVICE not in demo_services()
):
    # A typo must not create var/<typo>.sqlite3 and run against an empty database: say so, create nothing.
    raise SystemExit(
        f"EVENT_TASKS_SERVICE={EVENT_TASKS_SERVICE!r} is not one of the demo's services "
        f"({', '.join(sorted(demo_services()))}): nothing was created. Use one of them, or give a service of "
        f"your own its database with {EVENT_TASKS_SERVICE.upper()}_DATABASE_URL or DATABASE_URL"
    )
DATABASES = {"default": database(_db_url)}
if _db_url == _default_db:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh checkout can migrate at once
if not EVENT_TASKS_SERVICE:
    # A tooling process (an operator's `events status` / `events trace`) also reads every service
    # database named by <SERVICE>_DATABASE_URL, under the service's name (event_tasks.store.databases).
    for _name, _url in sorted(os.environ.items()):
        _alias = _name[: -len("_DATABASE_URL")].lower()
        if _name.endswith("_DATABASE_URL") and _url and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", _alias):
            DATABASES[_alias] = database(_url)

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2)
# Celery's Django fixup closes every database connection around every task unless told to reuse
# them; event tasks drop a broken connection themselves before their first query.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How long a pool waits for the result of a child that died before calling it lost (and requeueing).
CELERY_WORKER_LOST_WAIT = env_float("CELERY_WORKER_LOST_WAIT", 10.0)
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", True)
CELERY_TASK_SEND_SENT_EVENT = False
# Redis: a message a worker took and did not ack comes back after this many seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("EVENT_TASKS_VISIBILITY_TIMEOUT", 3600),
}
# Redis Sentinel (CELERY_BROKER_URL = "sentinel://h1:26379;sentinel://h2:26379"): the monitored master's name.
if env("CELERY_BROKER_MASTER_NAME"):
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = env("CELERY_BROKER_MASTER_NAME")
# The maintenance queues (Celery creates them) get the event queues' type.
CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = EVENT_TASKS_QUEUE_TYPE

# Retention (event_tasks/store/retention.py): one `celery beat` (Procfile `beat`) sends the prune task
# (config/celery_app.py adds it) to each service's own maintenance queue, which that service's
# worker consumes beside its event queue: each service prunes its own database.
EVENT_TASKS_KEEP_PROCESSED_DAYS = env_float("EVENT_TASKS_KEEP_PROCESSED_DAYS", 30.0)
EVENT_TASKS_KEEP_RESULTS_DAYS = env_float("EVENT_TASKS_KEEP_RESULTS_DAYS", 14.0)
EVENT_TASKS_KEEP_DEADLETTERS_DAYS = env_float("EVENT_TASKS_KEEP_DEADLETTERS_DAYS", 30.0)
EVENT_TASKS_PRUNE_BATCH = env_int("EVENT_TASKS_PRUNE_BATCH", 1000)
CELERY_BEAT_SCHEDULE = {
    f"events-prune-{app.rsplit('.', 1)[1]}": {
        "task": "event_tasks.prune",  # = maintenance.beat_entry(...)
        "schedule": env_float("EVENT_TASKS_PRUNE_EVERY", 3600.0),
        "options": {"queue": f"maintenance.{app.rsplit('.', 1)[1]}"},
    }
    for app in consumer_apps(CONSUMERS_PACKAGE, None)
}

# --- Flower and `events metrics` (basic auth outside local development) -----------------------
FLOWER_BASIC_AUTH = env("FLOWER_BASIC_AUTH")  # Flower reads FLOWER_BASIC_AUTH itself (or --conf=<file>)
EVENT_TASKS_METRICS_AUTH = env_secret("EVENT_TASKS_METRICS_AUTH")  # user:password
EVENT_TASKS_REQUIRE_ENDPOINT_AUTH = env_bool("EVENT_TASKS_REQUIRE_ENDPOINT_AUTH", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "event_tasks": {"handlers": ["console"], "level": env("EVENT_TASKS_LOG_LEVEL", "INFO"), "propagate": False}
    },
}
