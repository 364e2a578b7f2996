"""Shared fixtures: real brokers (private Redis server, private RabbitMQ vhost) and platforms."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from event_tasks import conf
from event_tasks.send.publisher import reset_default_publisher
from tests.brokers import PrivatePostgres, PrivateRabbitMQ, RedisServer, rabbitmq_vhost, take_redis_db


@pytest.fixture(autouse=True)
def _fresh_fabric_settings() -> Iterator[None]:
    conf.settings.cache_clear()
    reset_default_publisher()
    yield
    conf.settings.cache_clear()
    reset_default_publisher()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def postgres_database() -> Iterator[PrivatePostgres]:
    """An empty PostgreSQL database of this test's own (``.url``, ``.psql(sql)``), dropped after."""
    database = PrivatePostgres().start()
    yield database
    database.stop()


@pytest.fixture
def postgres_databases() -> Iterator[Callable[..., list[PrivatePostgres]]]:
    """Several PostgreSQL databases of this test's own: ``make(count, template=None)`` creates them
    (``template``: a database name to copy, e.g. one migrated once); every one is dropped after."""
    made: list[PrivatePostgres] = []

    def make(count: int, template: str | None = None) -> list[PrivatePostgres]:
        databases = [PrivatePostgres(template=template).start() for _ in range(count)]
        made.extend(databases)
        return databases

    yield make
    for database in reversed(made):
        database.stop()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="et-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def probe_template_db(workdir: Path) -> Path:
    """A migrated SQLite database for the probe services (copied per service: fast starts)."""
    from tests.integration.fabric import PROBE_ENV, migrate

    path = workdir / "probe-template.sqlite3"
    migrate(path, PROBE_ENV)
    return path


@pytest.fixture
def fresh_redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A Redis DB number of the private server that no other test uses, flushed after."""
    url = take_redis_db(redis_server)
    yield url
    import redis as redis_lib

    redis_lib.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    """A broker namespace of this module's own: a fresh Redis DB number, or a fresh RabbitMQ vhost."""
    if request.param == "redis":
        url = take_redis_db(redis_server)
        yield url
        import redis as redis_lib

        redis_lib.Redis.from_url(url).flushdb()
    else:
        with rabbitmq_vhost() as url:
            yield url


@pytest.fixture(scope="module")
def platform(broker_url: str, workdir: Path, probe_template_db: Path, request: pytest.FixtureRequest):
    from tests.integration.fabric import Platform

    name = f"{request.module.__name__.rsplit('.', 1)[-1]}-{broker_url.split(':', 1)[0]}"
    plat = Platform(broker_url, workdir / name, template_db=probe_template_db)
    yield plat
    plat.stop_all()


# Short Redis redelivery for crash tests: a killed worker's event is back within ~5 s.
CRASH_ENV = {
    "EVENT_TASKS_VISIBILITY_TIMEOUT": "4",
    "EVENT_TASKS_HANDLER_TIME_LIMIT": "3",
    "EVENT_TASKS_RESTORE_INTERVAL": "1",
    "CELERY_WORKER_LOST_WAIT": "0.5",
}


@pytest.fixture(scope="module")
def crash_platform(broker_url: str, workdir: Path, probe_template_db: Path, request: pytest.FixtureRequest):
    from tests.integration.fabric import Platform

    name = f"{request.module.__name__.rsplit('.', 1)[-1]}-{broker_url.split(':', 1)[0]}"
    plat = Platform(broker_url, workdir / name, env=CRASH_ENV, template_db=probe_template_db)
    yield plat
    plat.stop_all()


@pytest.fixture(params=["redis", "rabbitmq"])
def restartable_broker(request: pytest.FixtureRequest):
    """A broker of this test's own that it may restart: AOF redis-server, or a private RabbitMQ node."""
    broker = RedisServer(appendonly=True) if request.param == "redis" else PrivateRabbitMQ()
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture(scope="module")
def managed_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """A private RabbitMQ node with the management API (``events topology verify`` and ``status``
    read it; the machine's node has none), once the API answers."""
    from event_tasks.brokers.rabbitmq.api import ManagementAPI
    from event_tasks.errors import ManagementAPIUnavailable
    from event_tasks.testing import wait_until

    node = PrivateRabbitMQ(management=True).start()
    api = ManagementAPI(node.management_url, "/", timeout=1)

    def answers() -> bool:
        try:
            return api.get("overview") is not None
        except ManagementAPIUnavailable:
            return False

    wait_until(answers, 60, 0.2, "the private node's management API")
    yield node
    node.cleanup()
