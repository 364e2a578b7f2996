"""Redis behind Sentinel on loopback, that a test starts, breaks and stops itself.

A :class:`RedisSentinelSet` is a master and ``replicas`` replicas (each a private
:class:`tests.brokers.RedisServer`: own port, own data dir, AOF by default) and ``sentinels``
``redis-server --sentinel`` processes, each with its own config file in its own dir, monitoring
the master under ``master_name`` with a quorum of 2 and short timeouts (down after
:attr:`RedisSentinelSet.DOWN_AFTER_MS`), so that a SIGKILLed master is replaced within a few
seconds. Clients use :attr:`~RedisSentinelSet.url` (kombu's ``sentinel://…;sentinel://…`` list)
with :attr:`~RedisSentinelSet.transport_options` (``{"master_name": …}``), as Celery does.

:meth:`~RedisSentinelSet.start` returns once every sentinel sees the master, every replica and
the other sentinels. Everything is stopped by PID and every dir removed by
:meth:`~RedisSentinelSet.cleanup` (safe after a partial start, and twice). The machine's shared
Redis (6379) is never touched: every port is a free one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

import redis

from event_tasks.testing import wait_until
from tests.brokers import RedisServer, free_port

START_TIMEOUT = 30.0  # a replica's first sync and the sentinels' discovery of each other


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class Sentinel:
    """One ``redis-server --sentinel`` process, its config file and log in a dir of its own."""

    def __init__(self, master_name: str, master_port: int, down_after_ms: int, failover_timeout_ms: int) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="et-sentinel-")
        self.config = os.path.join(self.dir, "sentinel.conf")
        self.log = os.path.join(self.dir, "sentinel.log")
        self.process: subprocess.Popen[bytes] | None = None
        with open(self.config, "w") as fh:  # Sentinel rewrites it (what it learns): its own file
            fh.write(
                f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.dir}\nlogfile {self.log}\n"
                f"sentinel monitor {master_name} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
                f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {master_name} 1\n"
            )

    def start(self) -> Sentinel:
        self.process = subprocess.Popen(
            ["redis-server", self.config, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = self.client(timeout=0.2)

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"sentinel on port {self.port} exited:\n{_tail(self.log)}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(up, 20, 0.05, f"sentinel on port {self.port}")
        finally:
            client.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=timeout, socket_timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinelSet:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels on loopback (see the module docstring)."""

    DOWN_AFTER_MS = 3000  # a master that does not answer this long is subjectively down (1 s let a busy new master be deposed on a loaded 2-core machine)
    FAILOVER_TIMEOUT_MS = 3000  # a failed failover is retried after twice this

    def __init__(self, replicas: int = 2, sentinels: int = 3, master_name: str = "events", appendonly: bool = True):
        if sentinels < 2:
            raise ValueError("the sentinels agree with a quorum of 2: run at least 2")
        self.master_name = master_name
        self.servers = [RedisServer(appendonly=appendonly) for _ in range(1 + replicas)]
        self.sentinels = [
            Sentinel(master_name, self.servers[0].port, self.DOWN_AFTER_MS, self.FAILOVER_TIMEOUT_MS)
            for _ in range(sentinels)
        ]

    def __repr__(self) -> str:
        ports = ",".join(str(s.port) for s in self.servers)
        return f"<RedisSentinelSet {self.master_name} servers={ports} sentinels={[s.port for s in self.sentinels]}>"

    def __enter__(self) -> RedisSentinelSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- what clients use ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """kombu's (and Celery's) broker URL of the set: every sentinel, ``;``-separated."""
        return ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)

    @property
    def transport_options(self) -> dict[str, Any]:
        return {"master_name": self.master_name}

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> RedisSentinelSet:
        """Master, then replicas (in sync), then sentinels; returns once each sentinel sees them all.
        On failure everything started is stopped and the error carries the logs."""
        try:
            master = self._start(self.servers[0])
            for server in self.servers[1:]:
                self._replicate(self._start(server), master.port)
            for server in self.servers[1:]:
                self._wait_link_up(server)
            # The replicas are connected before the sentinels start: their first INFO of the master
            # lists them (otherwise the next INFO, 10 s later).
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_ready()
        except Exception as exc:
            text = self.describe()
            self.cleanup()
            raise RuntimeError(f"could not start {self!r}: {exc}\n{text}") from exc
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running sentinel names the same live master and sees every running replica
        (not down) and every other running sentinel."""
        live = [i for i, s in enumerate(self.servers) if _running(s)]

        def ready() -> bool:
            try:
                master = self.master_index()
            except (redis.RedisError, LookupError):
                return False
            replicas = {self.servers[i].port for i in live if i != master}
            for sentinel in self.sentinels:
                if not sentinel.running:
                    continue
                with sentinel.client() as client:
                    try:
                        state = client.sentinel_master(self.master_name)
                        seen = client.sentinel_slaves(self.master_name)
                    except redis.RedisError:
                        return False
                if state["port"] != self.servers[master].port or not state["is_master"] or state["is_sdown"]:
                    return False
                up = {
                    r["port"] for r in seen if not (r["is_sdown"] or r["is_odown"]) and r["master-link-status"] == "ok"
                }
                if not replicas <= up:
                    return False
                if state["num-other-sentinels"] < sum(s.running for s in self.sentinels) - 1:
                    return False
            return True

        wait_until(ready, timeout, 0.1, lambda: f"the sentinels to see the master and its replicas:\n{self.describe()}")

    def master(self) -> RedisServer:
        """The server that is master now, as the first sentinel that answers names it."""
        return self.servers[self.master_index()]

    def master_index(self) -> int:
        """The server the sentinels name the master; where they disagree (one has not heard of a
        failover yet), the one of the newest configuration (the highest config epoch)."""
        error: Exception | None = None
        newest: tuple[int, int] | None = None
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with sentinel.client() as client:
                try:
                    state = client.sentinel_master(self.master_name)
                except redis.RedisError as exc:
                    error = exc
                    continue
            if state and (newest is None or int(state["config-epoch"]) > newest[0]):
                newest = (int(state["config-epoch"]), int(state["port"]))
        if newest is not None:
            return self.index_of_port(newest[1])
        raise LookupError(f"no sentinel of {self!r} names a master ({error!r})")

    def index_of_port(self, port: int) -> int:
        for i, server in enumerate(self.servers):
            if server.port == port:
                return i
        raise LookupError(f"port {port} is none of {self!r}'s servers")

    def kill_master(self) -> int:
        """SIGKILL the current master (no shutdown, no final fsync); returns its index."""
        index = self.master_index()
        self.servers[index].kill()
        return index

    def wait_for_failover(self, old: int, timeout: float = 30.0) -> int:
        """Until every running sentinel names a master other than server ``old``, that master says
        it is one, and every sentinel sees it up; returns its index."""

        def promoted() -> tuple[int] | None:  # a tuple: server 0 is a new master too (wait_until wants truthy)
            named = set()
            for sentinel in self.sentinels:
                if not sentinel.running:
                    continue
                with sentinel.client() as client:
                    try:
                        address = client.sentinel_get_master_addr_by_name(self.master_name)
                        state = client.sentinel_master(self.master_name)
                    except redis.RedisError:
                        return None
                if not address or state["is_sdown"] or state["is_odown"]:
                    return None
                named.add(int(address[1]))
            if len(named) != 1:
                return None
            index = self.index_of_port(named.pop())
            if index == old:
                return None
            try:
                with self.servers[index].client() as client:
                    role = client.execute_command("ROLE")
            except redis.RedisError:
                return None
            return (index,) if role and role[0] in (b"master", "master") else None

        return wait_until(
            promoted, timeout, 0.1, lambda: f"the sentinels to promote a replica of server {old}:\n{self.describe()}"
        )[0]

    def start_server(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Bring killed (or stopped) server ``i`` back on its port and data dir, as a replica of the
        current master (unless the sentinels still name it the master); waits for its sync."""
        server = self.servers[i]
        if _running(server):
            raise RuntimeError(f"server {i} of {self!r} is running")
        self._start(server)
        master = self.master_index()
        if master != i:
            self._replicate(server, self.servers[master].port)
            self._wait_link_up(server, timeout)

    def stop_server(self, i: int) -> None:
        """SIGTERM server ``i`` (a clean shutdown: AOF flushed)."""
        self.servers[i].stop()

    def cleanup(self) -> None:
        """Stop every sentinel and server by PID and remove their dirs (safe twice, and after a failed start)."""
        for sentinel in self.sentinels:
            sentinel.cleanup()
        for server in self.servers:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                server.kill()
            server.cleanup()

    # -- diagnostics ----------------------------------------------------------------------------------
    def replica_offsets(self) -> dict[int, int | None]:
        """Each server's replication offset (the master's ``master_repl_offset``, a replica's
        ``slave_repl_offset``); ``None`` for a server that is down or does not answer."""
        offsets: dict[int, int | None] = {}
        for i, server in enumerate(self.servers):
            offsets[i] = None
            if not _running(server):
                continue
            try:
                with redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=1) as client:
                    info = client.info("replication")
            except redis.RedisError:
                continue
            key = "master_repl_offset" if info.get("role") == "master" else "slave_repl_offset"
            offsets[i] = int(info.get(key, 0))
        return offsets

    def roles(self) -> dict[int, str]:
        """Each server's role as it says (``master``, ``slave``) or ``down``."""
        roles: dict[int, str] = {}
        for i, server in enumerate(self.servers):
            roles[i] = "down"
            if not _running(server):
                continue
            try:
                with redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=1) as client:
                    roles[i] = str(client.info("replication").get("role"))
            except redis.RedisError:
                roles[i] = "not answering"
        return roles

    def describe(self) -> str:
        """Roles, offsets and each log's tail: for a failure message."""
        lines = [repr(self), f"roles: {self.roles()}", f"offsets: {self.replica_offsets()}"]
        for i, server in enumerate(self.servers):
            lines.append(
                f"--- server {i} (port {server.port}) log:\n{_tail(os.path.join(server.dir, 'redis.log'), 15)}"
            )
        for i, sentinel in enumerate(self.sentinels):
            lines.append(f"--- sentinel {i} (port {sentinel.port}) log:\n{_tail(sentinel.log, 40)}")
        return "\n".join(lines)

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    def _start(server: RedisServer) -> RedisServer:
        server.start()
        with server.client() as client:  # a replica's full sync starts at once (Redis waits 5 s for others)
            client.config_set("repl-diskless-sync-delay", 0)
        return server

    @staticmethod
    def _replicate(server: RedisServer, master_port: int) -> None:
        with server.client() as client:
            client.execute_command("REPLICAOF", "127.0.0.1", master_port)

    @staticmethod
    def _wait_link_up(server: RedisServer, timeout: float = START_TIMEOUT) -> None:
        def up() -> bool:
            try:
                with server.client() as client:
                    return client.info("replication").get("master_link_status") == "up"
            except redis.RedisError:
                return False

        wait_until(up, timeout, 0.05, f"replica on port {server.port} to sync with its master")


def _running(server: RedisServer) -> bool:
    return server.process is not None and server.process.poll() is None
