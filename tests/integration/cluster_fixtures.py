"""Broker nodes joined into one cluster through a real redis-server.

    def test_x(cluster, clients):
        a, b, c = cluster(3)          # three nodes, every link up
        ...

Nodes heartbeat every 100 ms and leave after 1 s of silence, so that a killed node is noticed
quickly. Each node's `threads` (SB_THREADS, default 2) means one link per shard and peer.
"""
import contextlib
import os
import subprocess
import threading

import pytest

from conftest import wait_for
from proxy_fixtures import redis_server  # noqa: F401  (a fixture the cluster fixture uses)

THREADS = int(os.environ.get("SB_THREADS", 2))

CLUSTER_CONFIG = """
[cluster]
heartbeat_ms = 100
node_timeout_ms = {node_timeout_ms}
"""

REMOTE_ROUTES = 'sb_broker_cluster_routes{kind="remote"}'
LOCAL_ROUTES = 'sb_broker_cluster_routes{kind="local"}'
HANDED_OUT = 'sb_broker_cluster_sessions_handed_over_total{direction="out"}'
TAKEN_IN = 'sb_broker_cluster_sessions_handed_over_total{direction="in"}'


def meshed(nodes):
    """True when every node sees all the others and has every link up."""
    n = len(nodes)
    for node in nodes:
        m = node.metrics()
        if m.get("sb_broker_cluster_nodes") != n:
            return False
        if m.get("sb_broker_cluster_links_up") != (n - 1) * node.threads:
            return False
    return True


class RedisMonitor:
    """The commands a Redis server receives, as `redis-cli monitor` prints them (binary values
    escaped), collected by a thread."""

    def __init__(self, port):
        self.lines = []
        self._proc = subprocess.Popen(["redis-cli", "-p", str(port), "monitor"],
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout.readline().strip() == "OK"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self._proc.stdout:
            self.lines.append(line)

    def commands(self, *words):
        """The commands seen so far that start with `words`, e.g. ("HGETALL", "sb:routes:a")."""
        start = " ".join(f'"{w}"' for w in words)
        return [line for line in list(self.lines) if start in line]

    def close(self):
        self._proc.terminate()
        self._proc.wait()
        self._reader.join()


@contextlib.contextmanager
def redis_monitor(redis):
    m = RedisMonitor(redis.port)
    try:
        yield m
    finally:
        m.close()


def wait_meshed(nodes, timeout=10.0):
    wait_for(lambda: meshed(nodes), timeout=timeout,
             what=f"{len(nodes)} nodes seeing each other with every link up")


def wait_remote_routes(node, count, timeout=5.0):
    """Waits until `node` knows exactly `count` routes of the other nodes."""
    wait_for(lambda: node.metric(REMOTE_ROUTES) == count, timeout=timeout,
             what=f"{count} remote routes on {node.name} (has {node.metric(REMOTE_ROUTES)})")


@pytest.fixture
def cluster(start_broker, redis_server):  # noqa: F811
    """cluster(n, names=None, config="", env=None, node_timeout_ms=1000, threads=THREADS) -> n
    nodes sharing `redis_server`, meshed; call again to add nodes (all of them are meshed before
    it returns)."""
    started = []

    def start(n, names=None, config="", env=None, node_timeout_ms=1000, threads=THREADS):
        names = names or [f"n{len(started) + i + 1}" for i in range(n)]
        cluster_config = CLUSTER_CONFIG.format(node_timeout_ms=node_timeout_ms)
        for name in names:
            node = start_broker(config=cluster_config + config, name=name,
                                extra_args=("--redis", redis_server.url), threads=threads, env=env)
            node.name = name
            started.append(node)
        wait_meshed(started)
        return [node for node in started if node.name in names]
    start.redis = redis_server
    start.nodes = started
    return start
