"""Real brokers for the tests, isolated from the machine's shared ones.

* Redis: a private ``redis-server`` on a free port with its own data dir, stopped (or SIGKILLed) by PID.
* RabbitMQ: a vhost of our own on the machine's RabbitMQ (``rabbitmqctl add_vhost``), deleted after.
* PostgreSQL: a database of our own on the machine's server (``createdb``, optionally a copy of a
  migrated template database), dropped after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import redis

from event_tasks.testing import wait_until

DATABASES = 256  # DB numbers of a private redis-server: a fresh one per test module that asks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server; ``appendonly`` for the tests that restart it and expect data back.

    ``appendfsync`` is Redis's own setting (``everysec``, its default, or ``always``: every write
    is fsynced before the reply, so a SIGKILL (:meth:`kill`) loses nothing that was acknowledged).
    :meth:`start` after :meth:`stop` or :meth:`kill` brings it back on the same port and data dir.
    """

    def __init__(self, appendonly: bool = False, appendfsync: str = "everysec") -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="et-redis-")
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--databases",
            str(DATABASES),
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, 20, 0.05, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite or fsync; what survives is what was on disk."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def cleanup(self) -> None:
        RedisServer.stop(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh vhost on the local RabbitMQ; yields its amqp:// URL."""
    vhost = f"et-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def rabbitmq_queue_depths(vhost_url: str) -> dict[str, int]:
    vhost = vhost_url.rsplit("/", 1)[1]
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "messages", "--quiet", "--no-table-headers")
    depths = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


class PrivateRabbitMQ:
    """A RabbitMQ node of our own (own name, ports, config and data dir) that tests may restart.

    The machine's shared node is never touched. Durable queues and persistent messages live in
    the data dir, so they survive :meth:`restart`. Every keyword is optional (free ports, a fresh
    temp dir and a name from the port by default); ``tests/rabbitmq_cluster.py`` builds its cluster
    nodes on this class.
    """

    def __init__(
        self,
        management: bool = False,
        *,
        node: str | None = None,
        port: int | None = None,
        dist_port: int | None = None,
        management_port: int | None = None,
        data_dir: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.management_port = (management_port or free_port()) if management else None
        self.node = node or f"et{self.port}@localhost"
        if data_dir is not None:
            os.makedirs(data_dir, exist_ok=True)
        self.dir = data_dir or tempfile.mkdtemp(prefix="et-rabbit-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        """The management API (only with ``management=True``: the machine's shared node has none)."""
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": os.path.join(self.dir, "feature_flags"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(self.dir, "plugins-expand"),
        }

    def _config_text(self) -> str:
        text = f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        if self.management_port:
            text += f"management.tcp.port = {self.management_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        return text

    def _write_files(self) -> None:
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as fh:
            fh.write(self._config_text())
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as fh:
            fh.write("[rabbitmq_management].\n" if self.management_port else "[].\n")
        if os.geteuid() == 0:  # rabbitmq-server drops to the rabbitmq user
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.dir], check=True)

    def launch(self) -> None:
        """Start ``rabbitmq-server`` in the background (:meth:`wait_started` waits for it)."""
        log = open(os.path.join(self.dir, "server.out"), "ab")
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <this node> *args`` (not checked: see ``returncode``)."""
        ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        return subprocess.run([ctl, "-n", self.node, *args], capture_output=True, text=True, timeout=timeout)

    def wait_started(self, timeout: float = 90) -> None:
        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited: {open(os.path.join(self.dir, 'server.out')).read()[-3000:]}"
                )
            return self.ctl("-q", "await_startup", "--timeout", "2", timeout=30).returncode == 0

        wait_until(up, timeout, 0.25, f"private RabbitMQ node {self.node}")

    def start(self) -> PrivateRabbitMQ:
        self._write_files()
        self.launch()
        self.wait_started()
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("-q", "stop", timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A database of our own on 127.0.0.1:5432 (trust auth, user postgres).

    ``template``: the name of a database to copy (``createdb -T``; it must have no open connections),
    e.g. one migrated once for several services' databases.
    """

    def __init__(self, prefix: str = "et_test", template: str | None = None) -> None:
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.template = template
        self.created = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.name}"

    def start(self) -> PrivatePostgres:
        template = ["-T", self.template] if self.template else []
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", *template, self.name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.created = True
        return self

    def psql(self, sql: str) -> str:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", self.name, "-qAtc", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def version(self) -> str:
        try:
            return self.psql("SHOW server_version").strip()
        except Exception:
            return "?"

    def stop(self) -> None:
        if self.created:
            subprocess.run(
                ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", self.name],
                capture_output=True,
                timeout=60,
            )
            self.created = False


_redis_dbs = iter(range(1, DATABASES))  # one counter for the whole session


def take_redis_db(redis_server: RedisServer) -> str:
    """The URL of a DB number of the private Redis that no other test uses (for module fixtures,
    which flush it after; tests take :func:`fresh_redis_url`). Never a fixed number: another
    test's leftovers (a demo's bindings) would be in it."""
    return f"redis://127.0.0.1:{redis_server.port}/{next(_redis_dbs)}"
