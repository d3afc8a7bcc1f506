"""A real Redis Cluster for tests: ``redis-server --cluster-enabled yes`` on free ports,
joined by ``redis-cli --cluster create``; every server stopped when the block ends."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from streamserve.embedded import free_port
from streamserve.subprocesses import LoggedProcess, started, wait_for_port

NODE_TIMEOUT_MS = 2000


@dataclass
class ClusterNode:
    port: int
    proc: LoggedProcess

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def info(self) -> dict[str, str]:
        """CLUSTER INFO as a dict."""
        with self.client() as c:
            info = c.cluster("INFO")
        return {str(k): v.decode() if isinstance(v, bytes) else str(v) for k, v in info.items()}

    def role(self) -> str:
        with self.client() as c:
            return str(c.execute_command("ROLE")[0].decode())

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class Cluster:
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A cluster URL naming one seed node (the client discovers the rest)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def alive(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc.poll() is None]

    def master_of(self, key: str) -> ClusterNode:
        """The node that serves ``key``'s slot now."""
        for node in self.alive():
            try:
                with node.client() as c:
                    slot = int(c.execute_command("CLUSTER KEYSLOT", key))
                    for start, end, master, *_ in c.execute_command("CLUSTER SLOTS"):
                        if start <= slot <= end:
                            port = int(master[1])
                            return next(n for n in self.nodes if n.port == port)
            except redis.RedisError:
                continue
        raise AssertionError(f"no live node knows who serves {key!r}")

    def wait_failover(self, key: str, dead: ClusterNode, timeout_s: float) -> float:
        """Wait until a live node serves ``key``'s slot in place of ``dead`` and the
        cluster is ok again; the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.master_of(key).port != dead.port:
                self.wait_state("ok", max(1.0, deadline - time.monotonic()))
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"no replica took over {key!r} after {timeout_s:.0f}s")

    def wait_replicas_synced(self, timeout_s: float) -> None:
        """Wait until every replica's link to its master is up (a replica that never
        synced is not eligible to take over)."""
        deadline = time.monotonic() + timeout_s
        links: list[str] = []
        while time.monotonic() < deadline:
            links = []
            for n in self.alive():
                with n.client() as c:
                    info = c.info("replication")
                if info.get("role") == "slave":
                    links.append(str(info.get("master_link_status")))
            if all(link == "up" for link in links):
                return
            time.sleep(0.1)
        raise AssertionError(f"replicas not in sync after {timeout_s:.0f}s: {links}")

    def masters(self) -> list[ClusterNode]:
        return [n for n in self.alive() if n.role() == "master"]

    def wait_state(self, state: str, timeout_s: float) -> float:
        """Wait until every live node reports ``cluster_state:<state>``; the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                seen = [n.info().get("cluster_state", "?") for n in self.alive()]
            except redis.RedisError as exc:
                seen = [str(exc)]
            if seen and all(s == state for s in seen):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"cluster not {state} after {timeout_s:.0f}s: {seen}")


def cluster_binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        raise AssertionError(
            "the Redis Cluster test needs redis-server and redis-cli on PATH "
            "(Debian: apt-get install redis-server redis-tools; .ci/run installs them)"
        )
    return server, cli


@contextmanager
def redis_cluster(masters: int = 3, replicas: int = 0) -> Iterator[Cluster]:
    """``masters`` masters with ``replicas`` replicas each, all on 127.0.0.1."""
    server, cli = cluster_binaries()
    cluster = Cluster()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ss-cluster-")))
        for _ in range(masters * (1 + replicas)):
            port = free_port()
            argv = [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                # the bus port defaults to port + 10000, past 65535 for a high free port
                "--cluster-port",
                str(free_port()),
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ]
            proc = stack.enter_context(started(argv, log_prefix="ss-cluster-node-"))
            wait_for_port(port, proc, "redis-server (cluster node)", 15)
            cluster.nodes.append(ClusterNode(port, proc))
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in cluster.nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster.wait_state("ok", 30)
        cluster.wait_replicas_synced(30)
        yield cluster
