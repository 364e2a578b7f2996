"""A real RabbitMQ cluster on loopback that a test starts, breaks and stops itself.

Every node is a :class:`ClusterNode` (a :class:`tests.brokers.PrivateRabbitMQ`): its own name,
ports, config file, data dir and ``HOME`` whose ``.erlang.cookie`` the cluster's nodes (and the
``rabbitmqctl`` calls that talk to them) share. The nodes are started with RabbitMQ's own
``rabbitmq-server`` script from its lib directory, as the ``rabbitmq`` user when we are root (the
packaged wrapper on the PATH would reset ``HOME`` to the machine node's and so use its cookie).

Forming the cluster: the first node boots alone; the others boot in parallel with the first as
their ``classic_config`` peer, so they join it while booting (no ``stop_app`` / ``join_cluster`` /
``start_app`` round). A node that came up standalone anyway is joined the classic way.
:meth:`RabbitMQCluster.start` returns when ``cluster_status`` shows every node running.

The machine's own node (``rabbit@localhost``), its cookie and its data are never touched; the
node names carry a random tag, the ports are free ones (or the ones given) and the dirs are temp
dirs, so two test runs never collide. Everything listens on 127.0.0.1 only (AMQP, distribution,
management; epmd as the machine's is).

On a 2-CPU machine: :meth:`~RabbitMQCluster.start` ~17-23 s (one node boots in ~6 s; booting is
CPU-bound, so two at once take ~10 s), :meth:`~RabbitMQCluster.kill` ~1 s,
:meth:`~RabbitMQCluster.start_node` ~6-9 s, :meth:`~RabbitMQCluster.cleanup` ~3 s. Every
``rabbitmqctl`` call is an Erlang VM of its own (~0.7 s): the helpers here make one or two.

What RabbitMQ 3.10 does that a test may trip over: a quorum queue keeps a killed node's consumers
(``suspected_down``) and ``list_consumers`` goes on listing them (:meth:`~RabbitMQCluster.consumer_nodes`
leaves them out); a queue's counters are what its leader last published (every second here, 5 s
by default); a node restarted after *every* node went down waits for the peers it last saw, so
bring them back together (:meth:`~RabbitMQCluster.start_nodes`).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from event_tasks.testing import wait_until
from tests.brokers import PrivateRabbitMQ

T = TypeVar("T")

START_TIMEOUT = 120.0  # one node's boot (two CPUs, three nodes booting at once)
JOIN_TIMEOUT = 60.0  # until the cluster sees a node running / down
STOP_TIMEOUT = 30.0  # a graceful stop, before SIGKILL
CTL_TIMEOUT = 60.0

_PID_IN_TEXT = re.compile(r"<([^<>.\s]+@[^<>\s]+?)\.\d+\.\d+\.\d+>")


def rabbitmq_sbin() -> str:
    """The directory of RabbitMQ's own scripts (not the packaged wrapper that switches user).

    ``RABBITMQ_SBIN`` wins; then Debian's ``/usr/lib/rabbitmq/bin`` and lib dirs; then the
    directory of the ``rabbitmq-server`` on the PATH (a generic-unix or Homebrew install, where it
    is RabbitMQ's script itself).
    """
    candidates = [
        os.environ.get("RABBITMQ_SBIN", ""),
        "/usr/lib/rabbitmq/bin",
        *sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"), reverse=True),
    ]
    for directory in candidates:
        if directory and os.access(os.path.join(directory, "rabbitmq-server"), os.X_OK):
            return directory
    exe = shutil.which("rabbitmq-server")
    if exe is None:
        raise RuntimeError("rabbitmq-server not found (install RabbitMQ or set RABBITMQ_SBIN)")
    return os.path.dirname(os.path.realpath(exe))


def _run_as() -> dict[str, Any]:
    """Popen keywords: as root, run RabbitMQ as the ``rabbitmq`` user (it owns the node dirs)."""
    if os.geteuid() == 0:
        return {"user": "rabbitmq", "group": "rabbitmq", "extra_groups": []}
    return {}


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _group_pids(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (the node's session: wrapper shell, beam.smp, helpers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` in threads; return their results in order, or raise the first failure."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


class ClusterNode(PrivateRabbitMQ):
    """One node of a :class:`RabbitMQCluster`: a PrivateRabbitMQ with the cluster's cookie, a pid
    file, peers to join at first boot, and :meth:`kill`."""

    def __init__(
        self,
        index: int,
        *,
        node: str,
        home: str,
        data_dir: str,
        peers: Sequence[str] = (),
        port: int | None = None,
        dist_port: int | None = None,
        management: bool = False,
        management_port: int | None = None,
    ) -> None:
        super().__init__(
            management, node=node, port=port, dist_port=dist_port, management_port=management_port, data_dir=data_dir
        )
        self.index = index
        self.home = home
        self.peers = list(peers)
        self.sbin = rabbitmq_sbin()
        self.pid_file = os.path.join(self.dir, "rabbitmq.pid")
        self.log_file = os.path.join(self.dir, "log", f"{self.node}.log")

    def __repr__(self) -> str:
        return f"<ClusterNode {self.index} {self.node} amqp={self.port} dist={self.dist_port}>"

    def _cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        return {
            **env,
            "HOME": self.home,  # .erlang.cookie: the cluster's, not the machine node's
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),  # empty: not /etc's
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _env(self) -> dict[str, str]:
        return {
            **super()._env(),
            **self._cli_env(),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_PID_FILE": self.pid_file,
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
        }

    def _config_text(self) -> str:
        text = super()._config_text()
        text += "collect_statistics_interval = 1000\n"  # channel / connection / classic queue stats: 1 s, not 5
        if self.peers:  # used at first boot only (an empty data dir); a restart rejoins from its own data
            text += "cluster_formation.peer_discovery_backend = classic_config\n"
            text += "".join(f"cluster_formation.classic_config.nodes.{n} = {p}\n" for n, p in enumerate(self.peers, 1))
        return text

    def _write_files(self) -> None:
        with open(os.path.join(self.dir, "rabbitmq-env.conf"), "w"):
            pass
        with open(os.path.join(self.dir, "advanced.config"), "w") as fh:
            # a quorum queue's leader publishes its counters (messages, consumers) every tick: 1 s, not 5
            fh.write(
                "[{rabbit, [{quorum_tick_interval, 1000}, {dead_letter_worker_publisher_confirm_timeout, 5000}]}].\n"
            )
        super()._write_files()

    def launch(self) -> None:
        if self.running():
            return
        self._write_files()
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)
        log = open(os.path.join(self.dir, "server.out"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(self.sbin, "rabbitmq-server")],
            env=self._env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **_run_as(),
        )
        log.close()

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [os.path.join(self.sbin, "rabbitmqctl"), "-n", self.node, *args],
            env=self._cli_env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **_run_as(),
        )

    def running(self) -> bool:
        """Our rabbitmq-server process is alive (not: booted; see :meth:`wait_started`)."""
        return self.process is not None and self.process.poll() is None

    def beam_pid(self) -> int | None:
        """The Erlang VM's PID: from the pid file RabbitMQ writes, else beam.smp in the node's process group."""
        try:
            with open(self.pid_file) as fh:
                pid = int(fh.read().strip())
            if _pid_alive(pid):
                return pid
        except (OSError, ValueError):
            pass
        if self.process is None:
            return None
        for pid in _group_pids(self.process.pid):
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip().startswith("beam"):
                        return pid
            except OSError:
                continue
        return None

    def describe(self, lines: int = 25) -> str:
        """The node, its ports and dirs, its log's first errors, and the tails of its log and output."""
        state = "no process" if self.process is None else f"pid {self.process.pid}, exit {self.process.poll()}"
        out = os.path.join(self.dir, "server.out")
        try:
            with open(self.log_file, errors="replace") as fh:
                errors = [line for line in fh if "[error]" in line][:8]
        except OSError:
            errors = []
        boot = [line for line in _tail(out, 200).splitlines(True) if "BOOT FAILED" in line or "terminating" in line]
        return (
            f"node {self.index} {self.node} (amqp {self.port}, dist {self.dist_port}, "
            f"management {self.management_port}, dir {self.dir}, {state})\n"
            + (f"--- first errors in {self.log_file} ---\n{''.join(errors + boot[-2:])}" if errors or boot else "")
            + f"--- {self.log_file} (tail) ---\n{_tail(self.log_file, lines)}"
            f"--- {out} (tail) ---\n{_tail(out, 10)}"
        )

    def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        """Until ``await_startup`` succeeds; polls the AMQP port first (cheap: each CLI call is a VM)."""
        deadline = time.monotonic() + timeout

        def exited() -> None:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self.process.returncode}):\n{self.describe()}")

        def listening() -> bool:
            exited()
            return _port_open(self.port)

        try:
            wait_until(listening, timeout, 0.1, f"node {self.index} {self.node} to listen on {self.port}")

            def booted() -> bool:
                exited()
                left = max(deadline - time.monotonic(), 2)
                result = self.ctl("-q", "await_startup", "--timeout", str(int(min(left, 30))), timeout=left + 30)
                return result.returncode == 0

            wait_until(booted, max(deadline - time.monotonic(), 1), 0.25, f"node {self.index} {self.node} to boot")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.describe()}") from None

    def kill(self) -> None:
        """SIGKILL the Erlang VM (a crash: no shutdown), then whatever is left of its process group."""
        pid = self.beam_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._kill_group()

    def _kill_group(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        pgid = self.process.pid
        wait_until(lambda: not _group_pids(pgid), 10, 0.05, f"node {self.node}'s processes to exit")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful ``rabbitmqctl stop``; SIGKILL after ``timeout`` seconds."""
        if not self.running():
            self._kill_group()  # helpers a killed wrapper may have left
            return
        try:
            stopped = self.ctl("-q", "stop", timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
        assert self.process is not None
        if stopped:  # otherwise (still booting, unreachable) there is nothing to wait for
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()


class RabbitMQCluster:
    """``size`` RabbitMQ nodes on 127.0.0.1 clustered together; see the module docstring.

    ``ports`` / ``dist_ports`` / ``management_ports``: fixed ports (a developer's cluster); free
    ones by default. ``names``: the node names (default ``et<N>-<random>@localhost``).
    """

    def __init__(
        self,
        size: int = 3,
        management: bool = False,
        *,
        ports: Sequence[int] | None = None,
        dist_ports: Sequence[int] | None = None,
        management_ports: Sequence[int] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        self.size = size
        self.management = management
        self.dir = tempfile.mkdtemp(prefix="et-rabbit-cluster-")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        tag = uuid.uuid4().hex[:8]
        names = list(names or [f"et{i + 1}-{tag}@localhost" for i in range(size)])
        self.cookie = secrets.token_hex(16).upper()
        cookie_path = os.path.join(self.home, ".erlang.cookie")
        with open(cookie_path, "w") as fh:
            fh.write(self.cookie)
        os.chmod(cookie_path, 0o400)
        self.nodes: list[ClusterNode] = [
            ClusterNode(
                i,
                node=names[i],
                home=self.home,
                data_dir=os.path.join(self.dir, f"node{i + 1}"),
                peers=[names[0]] if i else [],
                port=ports[i] if ports else None,
                dist_port=dist_ports[i] if dist_ports else None,
                management=management,
                management_port=management_ports[i] if management_ports else None,
            )
            for i in range(size)
        ]
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.dir], check=True)
        self._down: set[int] = set(range(size))  # nodes we know not to be running
        self._lock = threading.Lock()
        self.cleaned = False
        self.timings: dict[str, float] = {}  # seconds the last start / kill / start_node took
        self.joined_late: list[int] = []  # nodes that booted standalone and were joined with join_cluster
        atexit.register(self._at_exit)  # a test process that dies without cleanup() leaves no node running

    def _at_exit(self) -> None:
        try:
            self.cleanup()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<RabbitMQCluster {[n.node for n in self.nodes]} ports {[n.port for n in self.nodes]}>"

    def __enter__(self) -> RabbitMQCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The failover list kombu and Celery take: ``amqp://…:P1//;amqp://…:P2//;…``."""
        return ";".join(self.urls)

    @property
    def management_urls(self) -> list[str]:
        return [node.management_url for node in self.nodes] if self.management else []

    def index_of(self, node_name: str) -> int:
        for node in self.nodes:
            if node.node == node_name:
                return node.index
        raise KeyError(f"{node_name} is not a node of {self!r}")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RabbitMQCluster:
        """Boot every node and wait until ``cluster_status`` shows all of them running."""
        began = time.monotonic()
        first, rest = self.nodes[0], self.nodes[1:]
        try:
            first.launch()
            first.wait_started()
            self._down.discard(0)
            self.timings["start.first"] = time.monotonic() - began
            for node in rest:
                node.launch()
            _parallel([node.wait_started for node in rest])
            self._down.difference_update(node.index for node in rest)
            self.timings["start.others"] = time.monotonic() - began
            names = {node.node for node in self.nodes}
            if not names <= set(self._cluster_nodes(0, "running_nodes")):
                members = set(self._cluster_nodes(0, "disk_nodes"))
                for node in rest:  # a node that found no peer at boot came up standalone: join it now
                    if node.node not in members:
                        self.joined_late.append(node.index)
                        self._join(node.index)
                self.wait_running(range(self.size))
        except BaseException:
            self.cleanup()
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def _join(self, i: int) -> None:
        node = self.nodes[i]
        for args in (["stop_app"], ["join_cluster", self.nodes[0].node], ["start_app"]):
            self._check(node, node.ctl(*args), args)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``'s Erlang VM; return once another node reports it down. Repeatable."""
        began = time.monotonic()
        node = self.nodes[i]
        with self._lock:
            node.kill()
            self._down.add(i)
        if len(self._down) < self.size:
            self._wait_status(
                lambda running: node.node not in running, f"a node to report node {i} {node.node} down", asker=None
            )
        self.timings["kill"] = time.monotonic() - began

    def start_node(self, i: int) -> None:
        """Start node ``i`` again (same data dir and ports); return once it runs and is back in the
        cluster. A no-op for a node that is up."""
        began = time.monotonic()
        node = self.nodes[i]
        with self._lock:
            if node.running() and i not in self._down:
                return
            if not node.running():
                node.launch()
        try:
            node.wait_started()
        except BaseException:
            node.kill()
            raise
        with self._lock:
            self._down.discard(i)
        self.wait_running([i])
        self.timings["start_node"] = time.monotonic() - began

    def start_nodes(self, indexes: Sequence[int]) -> None:
        """:meth:`start_node` for several nodes at once (needed after all of them went down: a
        restarted node waits for the peers it last saw running)."""
        _parallel([functools.partial(self.start_node, i) for i in indexes])

    def stop_node(self, i: int) -> None:
        """A graceful stop of node ``i`` (``rabbitmqctl stop``), SIGKILL after a timeout."""
        with self._lock:
            self.nodes[i].stop()
            self._down.add(i)

    def wait_running(self, indexes: Sequence[int] | range, timeout: float = JOIN_TIMEOUT) -> None:
        """Until every up node's view (one asked at a time) shows ``indexes`` running."""
        names = {self.nodes[i].node for i in indexes}
        self._wait_status(lambda running: names <= running, f"nodes {list(indexes)} running", timeout=timeout)

    def _wait_status(
        self, ok: Callable[[set[str]], bool], what: str, asker: int | None = None, timeout: float = JOIN_TIMEOUT
    ) -> None:
        last: list[str] = []

        def check() -> bool:
            for i in self._up(asker):
                try:
                    running = set(self._cluster_nodes(i, "running_nodes"))
                except RuntimeError as exc:
                    last[:] = [str(exc)]
                    continue
                last[:] = [f"node {i} sees running: {sorted(running)}"]
                return ok(running)
            return False

        try:
            wait_until(check, timeout, 0.25, what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {' '.join(last)}\n{self.describe()}") from None

    def _cluster_nodes(self, i: int, key: str) -> list[str]:
        status = json.loads(self.rabbitmqctl("cluster_status", "--formatter", "json", node=i))
        return list(status.get(key) or [])

    def cleanup(self) -> None:
        """Stop every node (SIGKILL after a timeout) and remove the dirs. Safe after a failed start
        and when called twice."""
        with self._lock:
            if not self.cleaned:
                self.cleaned = True
                errors = []
                with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                    for future in [pool.submit(node.stop) for node in self.nodes]:
                        try:
                            future.result()
                        except Exception as exc:
                            errors.append(exc)
                atexit.unregister(self._at_exit)
                for node in self.nodes:  # whatever a failed stop left
                    try:
                        node.kill()
                    except Exception as exc:
                        errors.append(exc)
                self._down = set(range(self.size))
                shutil.rmtree(self.dir, ignore_errors=True)
                if errors:
                    raise errors[0]

    # -- asking the cluster ------------------------------------------------------------------

    def _up(self, prefer: int | None = None) -> list[int]:
        order = ([prefer] if prefer is not None else []) + [i for i in range(self.size) if i != prefer]
        return [i for i in order if i not in self._down and self.nodes[i].running()]

    def rabbitmqctl(self, *args: str, node: int | None = None, timeout: float = CTL_TIMEOUT) -> str:
        """``rabbitmqctl *args`` against node ``node`` (default: the first one that is up); its stdout.

        Raises RuntimeError with the command, its output and the node's log tail when it fails.
        """
        if node is None:
            up = self._up()
            if not up:
                raise RuntimeError(f"no node of {self!r} is up")
            node = up[0]
        target = self.nodes[node]
        return self._check(target, target.ctl(*args, timeout=timeout), list(args))

    def _check(self, node: ClusterNode, result: subprocess.CompletedProcess[str], args: list[str]) -> str:
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl -n {node.node} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stderr.strip() or result.stdout.strip()}\n{node.describe(20)}"
            )
        return result.stdout

    def _json(self, *args: str, node: int | None = None) -> list[dict[str, Any]]:
        out = self.rabbitmqctl(*args, "--formatter", "json", "--quiet", node=node)
        return json.loads(out) if out.strip() else []

    def _table(self, *args: str, node: int | None = None) -> list[list[str]]:
        """Tab-separated rows: unlike the JSON formatter (``#PID<12767.605.0>``), the table prints a
        pid with its node's name (``<et2-…@localhost.1796172402.605.0>``)."""
        out = self.rabbitmqctl(*args, "--quiet", "--no-table-headers", node=node)
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def _node_of(self, text: object) -> int | None:
        """The index of the node named in an Erlang pid as rabbitmqctl prints it (``<et2-…@localhost.1.2.3>``)."""
        match = _PID_IN_TEXT.search(str(text))
        if match is None:
            return None
        try:
            return self.index_of(match.group(1))
        except KeyError:
            return None

    def queue_infos(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        """Every queue of ``vhost`` (one rabbitmqctl call): name -> what :meth:`queue_info` says."""
        rows = self._json(
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "leader",
            "members",
            "online",
        )
        infos = {}
        for row in rows:
            name = str(row.get("name"))
            leader = row.get("leader")
            infos[name] = {
                "name": name,
                "type": row.get("type"),
                "messages": _int(row.get("messages")),
                "messages_ready": _int(row.get("messages_ready")),
                "messages_unacknowledged": _int(row.get("messages_unacknowledged")),
                "consumers": _int(row.get("consumers")),
                "leader": self._index_or_none(leader) if leader else None,
                "members": self._indexes(row.get("members")),
                "online": self._indexes(row.get("online")),
            }
        return infos

    def queue_info(self, queue: str, vhost: str = "/") -> dict[str, Any]:
        """``name``, ``type``, ``messages``, ``messages_ready``, ``messages_unacknowledged``,
        ``consumers``, ``leader`` (a node index; a classic queue's: the node it lives on),
        ``members`` and ``online`` (node indexes; a quorum queue's replicas and those up).

        The counters are what the queue last published: a quorum queue's leader does so every
        second here (``quorum_tick_interval``), and right after a leader election they may lag.
        """
        infos = self.queue_infos(vhost)
        if queue not in infos:
            raise KeyError(f"no queue {queue!r} in vhost {vhost!r} (queues: {sorted(infos)})")
        info = infos[queue]
        if info["leader"] is None and info["type"] == "classic":
            info["leader"] = self._classic_queue_node(queue, vhost)
        return info

    def _classic_queue_node(self, queue: str, vhost: str) -> int | None:
        for row in self._table("list_queues", "-p", vhost, "name", "pid"):
            if len(row) == 2 and row[0] == queue:
                return self._node_of(row[1])
        return None

    def _index_or_none(self, name: object) -> int | None:
        try:
            return self.index_of(str(name))
        except KeyError:
            return None

    def _indexes(self, names: object) -> list[int]:
        if not isinstance(names, list):
            return []
        return sorted(i for i in (self._index_or_none(n) for n in names) if i is not None)

    def leader_of(self, queue: str, vhost: str = "/") -> int:
        """The index of the node leading quorum queue ``queue`` (hosting it, for a classic queue)."""
        leader = self.queue_info(queue, vhost)["leader"]
        if leader is None:
            raise RuntimeError(f"queue {queue!r} has no leader right now (election under way?)")
        return leader

    def wait_leader(
        self, queue: str, vhost: str = "/", timeout: float = JOIN_TIMEOUT, not_on: int | None = None
    ) -> int:
        """Until ``queue`` has a leader (on a node other than ``not_on``, e.g. one just killed)."""

        def elected() -> list[int]:  # [index] once elected: a truthy value even for node 0
            try:
                leader = self.queue_info(queue, vhost)["leader"]
            except (KeyError, RuntimeError):
                return []
            return [] if leader is None or leader == not_on else [leader]

        return wait_until(elected, timeout, 0.25, f"a leader for {queue!r} (not on {not_on})")[0]

    def consumer_nodes(self, queue: str, vhost: str = "/") -> list[int]:
        """Indexes of the nodes whose channels consume ``queue`` (where its consumers, e.g. Celery
        workers, are connected), one entry per consumer, sorted.

        A quorum queue keeps the consumers of a node that went down (``suspected_down``) until it
        sees their channels gone, and ``list_consumers`` goes on listing them: only the consumers
        whose channel is alive now (``list_channels`` on the running nodes) count.
        """
        consumers, channels = _parallel(
            [
                lambda: self._table("list_consumers", "-p", vhost, "queue_name", "channel_pid"),
                lambda: self._table("list_channels", "pid"),
            ]
        )
        alive = {row[0] for row in channels if row}
        nodes = []
        for row in consumers:
            if len(row) == 2 and row[0] == queue and row[1] in alive:
                i = self._node_of(row[1])
                if i is not None:
                    nodes.append(i)
        return sorted(nodes)

    def connection_nodes(self) -> dict[int, int]:
        """Node index -> the number of client connections on it (every node, zeros included)."""
        counts = dict.fromkeys(range(self.size), 0)
        for row in self._table("list_connections", "pid"):
            i = self._node_of(row[0])
            if i is not None:
                counts[i] += 1
        return counts

    def describe(self) -> str:
        return "\n".join(node.describe(15) for node in self.nodes)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0
