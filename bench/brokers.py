"""Private brokers and databases for the benchmark; the machine's shared ones are never touched.

* Redis: a ``redis-server`` of our own on a free port with its own data dir, no persistence
  (the test suite's ``tests.brokers.RedisServer``), stopped by PID;
* RabbitMQ: a vhost of our own on the local RabbitMQ (``rabbitmqctl add_vhost``), deleted after;
* PostgreSQL: a database of our own (``createdb``), dropped after.
"""

from __future__ import annotations

import uuid

from tests.brokers import PrivatePostgres, RedisServer, rabbitmqctl

__all__ = ["PrivatePostgres", "PrivateRedis", "RabbitVhost"]


class PrivateRedis(RedisServer):
    """The test suite's private ``redis-server`` (no persistence), with its data dir removed on stop."""

    def version(self) -> str:
        return self.client().info("server")["redis_version"]

    def stop(self) -> None:
        self.cleanup()


class RabbitVhost:
    """A vhost of our own on the machine's RabbitMQ (guest/guest on 127.0.0.1:5672)."""

    def __init__(self) -> None:
        self.name = f"et-bench-{uuid.uuid4().hex[:10]}"
        self.created = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    def start(self) -> RabbitVhost:
        rabbitmqctl("add_vhost", self.name)
        self.created = True
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def version(self) -> str:
        try:
            out = rabbitmqctl("version")
            return out.strip().splitlines()[-1]
        except Exception:
            return "?"

    def stop(self) -> None:
        if self.created:
            rabbitmqctl("delete_vhost", self.name)
            self.created = False
