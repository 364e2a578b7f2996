"""Private brokers and databases for the benchmark; the machine's shared ones are never touched.

* Redis: a ``redis-server`` of our own on a free port with its own data dir, no persistence
  (like the reference figures in BROKER_FACTS.md), stopped by PID;
* RabbitMQ: a vhost of our own on the local RabbitMQ (``rabbitmqctl add_vhost``), deleted after;
* PostgreSQL: a database of our own (``createdb``), dropped after.
"""
from __future__ import annotations

import subprocess
import uuid

from tests.brokers import RedisServer, rabbitmqctl


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

    def start(self) -> "RabbitVhost":
        rabbitmqctl("add_vhost", self.name)
        self.created = True
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def version(self) -> str:
        try:
            out = rabbitmqctl("version")
            return out.strip().splitlines()[-1]
        except Exception:  # noqa: BLE001
            return "?"

    def stop(self) -> None:
        if self.created:
            rabbitmqctl("delete_vhost", self.name)
            self.created = False


class PrivatePostgres:
    """A database of our own on 127.0.0.1:5432 (trust auth, user postgres)."""

    def __init__(self) -> None:
        self.name = f"et_bench_{uuid.uuid4().hex[:10]}"
        self.created = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.name}"

    def start(self) -> "PrivatePostgres":
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.name], check=True,
                       capture_output=True, timeout=60)
        self.created = True
        return self

    def psql(self, sql: str) -> str:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", self.name, "-qAtc", sql],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def version(self) -> str:
        try:
            return self.psql("SHOW server_version").strip()
        except Exception:  # noqa: BLE001
            return "?"

    def stop(self) -> None:
        if self.created:
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", self.name],
                           capture_output=True, timeout=60)
            self.created = False
