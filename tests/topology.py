"""Real Redis topologies on loopback ports for tests: a Redis Cluster (3 masters, each with a
replica, made by ``redis-cli --cluster create``) and a Sentinel group (a master, a replica and 3
Sentinels). Both use the machine's ``redis-server``; nodes can be killed and started again."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis as sync_redis

from tests.redis_server import machine_redis_server


def cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class Node:
    """One redis-server (or Sentinel) process on a free port, with its own folder."""

    def __init__(
        self, binary: str, root: Path, name: str, *args: str, sentinel_conf: str | None = None
    ) -> None:
        self.binary = binary
        self.port = cluster_port()
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.args = list(args)
        self.sentinel_conf = sentinel_conf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.sentinel_conf is not None:
            conf = self.dir / "sentinel.conf"
            if not conf.exists():
                conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n" + self.sentinel_conf)
            argv = [self.binary, str(conf), "--sentinel"]
        else:
            argv = [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                *self.args,
            ]
        argv += ["--logfile", str(self.dir / "redis.log"), "--daemonize", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.client().ping(), f"node {self.port} did not start")

    def client(self) -> sync_redis.Redis:
        return sync_redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def wait_for(check: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (sync_redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.05)


def _binary() -> str:
    found = machine_redis_server() or shutil.which("redis-server")
    if not found:
        raise RuntimeError("the topology tests need the machine's redis-server")
    return found


class Cluster:
    """A Redis Cluster of 3 masters, each with one replica."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobbers-cluster-"))
        binary = _binary()
        self.nodes = [
            Node(
                binary,
                self.root,
                f"n{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-replica-validity-factor",
                "0",
            )
            for i in range(6)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes[:3])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(self.healthy, "the cluster did not become ready")

    def healthy(self) -> bool:
        for node in self.nodes:
            if node.proc is None:
                continue
            info = node.client().cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        return len(self.masters()) == 3

    def masters(self) -> list[Node]:
        """The nodes that are masters now (a failover changes them)."""
        out = []
        for node in self.nodes:
            if node.proc is not None and node.client().info("replication")["role"] == "master":
                out.append(node)
        return out

    def master_of(self, key: str) -> Node:
        """The master that serves ``key``'s slot now."""
        slot = int(self.nodes_alive()[0].client().cluster("keyslot", key))
        for node in self.masters():
            if any(a <= slot <= b for a, b in _slot_ranges(node)):
                return node
        raise RuntimeError(f"no master serves slot {slot}")

    def nodes_alive(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None]

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _slot_ranges(node: Node) -> list[tuple[int, int]]:
    """The slot ranges ``node`` serves as a master (from its own CLUSTER NODES line)."""
    raw = node.client().execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    for line in text.splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            out = []
            for part in fields[8:]:
                if part.startswith("["):
                    continue
                a, _, b = part.partition("-")
                out.append((int(a), int(b or a)))
            return out
    return []


class SentinelGroup:
    """A master, one replica and 3 Sentinels watching service ``mymaster``."""

    SERVICE = "mymaster"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobbers-sentinel-"))
        binary = _binary()
        self.master = Node(binary, self.root, "master")
        self.replica = Node(binary, self.root, "replica")
        self.sentinels: list[Node] = []
        self._binary = binary

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(s.address for s in self.sentinels) + f"/{self.SERVICE}"

    def start(self) -> None:
        self.master.start()
        self.replica.args = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        conf = (
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
            f"sentinel parallel-syncs {self.SERVICE} 1\n"
        )
        self.sentinels = [Node(self._binary, self.root, f"s{i}", sentinel_conf=conf) for i in range(3)]
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(
            lambda: self.replica.client().info("replication")["master_link_status"] == "up",
            "the replica did not sync",
        )
        wait_for(
            lambda: all(
                int(s.client().sentinel_master(self.SERVICE)["num-other-sentinels"]) == 2
                for s in self.sentinels
            ),
            "the sentinels did not find each other",
        )

    def current_master(self) -> Node:
        _host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(self.SERVICE)
        return self.master if int(port) == self.master.port else self.replica

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
