"""The whole tier: clients through one `switchboard` endpoint in front of a broker cluster. Whatever
node the strategy gives each client, every message reaches every subscriber; a node killed in
the middle of traffic leaves the others carrying on and its clients resume through the proxy."""
import pytest

from cluster_fixtures import LOCAL_ROUTES, REMOTE_ROUTES, cluster, redis_server  # noqa: F401
from conftest import run_bench, wait_for
from proxy_fixtures import FAST_HEALTH, conns, pool, start_proxy  # noqa: F401

FORWARDED = "sb_broker_messages_forwarded_total"

STRATEGIES = {
    "round-robin": {"strategy": "weighted-round-robin"},
    "least-connections": {"strategy": "least-connections"},
    "hash-client-id": {"strategy": "source-hash", "hash_key": "client-id"},
    # Every test client comes from 127.0.0.1: they all land on one node, which must work too.
    "hash-source-ip": {"strategy": "source-hash", "hash_key": "source-ip"},
}


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=STRATEGIES.keys())
def test_100_publishers_and_100_subscribers_through_one_endpoint(cluster, start_proxy, tmp_path,
                                                                  strategy):
    nodes = cluster(3)
    proxy = start_proxy({"brokers": pool(*nodes, health=FAST_HEALTH, **strategy)})
    # 100 pairs, each a publisher and a subscriber of its own topic, at QoS 1: 2000 messages a
    # second for two seconds, counted one by one (sequence numbers per publisher).
    result, _ = run_bench(tmp_path, proxy.port, "pairs", "--clients", "100", "--qos", "1",
                          "--rate", "2000", "--duration", "2", "--warmup", "0.5", "--drain", "5")
    assert result["sent"] >= 3000
    assert result["received"] == result["expected"] == result["sent"]
    assert (result["lost"], result["duplicates"], result["reordered"]) == (0, 0, 0)
    forwarded = sum(n.metric(FORWARDED) for n in nodes)
    if strategy.get("hash_key") == "source-ip":
        assert forwarded == 0  # one node had everyone
    else:
        # Publisher and subscriber of a pair met on different nodes for many pairs.
        assert forwarded > result["sent"] / 10


def test_a_killed_node_s_clients_resume_through_the_proxy(cluster, start_proxy, clients, conns):
    a, b, c = cluster(3)
    proxy = start_proxy({"brokers": pool(a, b, c, strategy="least-connections",
                                         health=FAST_HEALTH)})
    walkers = [conns.reconnecting(proxy.port, f"walker-{i}") for i in range(9)]
    assert [n.metric("sb_broker_connections") for n in (a, b, c)] == [3, 3, 3]
    # Traffic from a to b that must not notice c's death.
    listener = clients.paho(b.port, "listener")
    listener.subscribe("feed/#", 1)
    feeder = clients.paho(a.port, "feeder")
    wait_for(lambda: a.metric(REMOTE_ROUTES) == b.metric(LOCAL_ROUTES) + c.metric(LOCAL_ROUTES),
             what="a knowing every route")
    for i in range(10):
        feeder.publish("feed/x", f"before{i}", 1)

    c.kill()
    for i in range(10):
        feeder.publish("feed/x", f"after{i}", 1)
    got = [m.payload.decode() for m in listener.wait_messages(20, timeout=10)]
    assert got == [f"before{i}" for i in range(10)] + [f"after{i}" for i in range(10)]

    # c's routes vanish from the others' tables: each knows exactly the other survivor's.
    wait_for(lambda: a.metric(REMOTE_ROUTES) == b.metric(LOCAL_ROUTES)
             and b.metric(REMOTE_ROUTES) == a.metric(LOCAL_ROUTES), timeout=10,
             what="the killed node's routes gone")
    proxy.wait_state(c.name, "down", pool_name="brokers")
    # c's three clients reconnected through the proxy to a and b, and every walker works again:
    # publishing to itself, and receiving from a publisher on another node.
    wait_for(lambda: sum(w.connections for w in walkers) == 12, timeout=10,
             what="c's three walkers connected again")
    assert a.metric("sb_broker_connections") + b.metric("sb_broker_connections") == 11
    for w in walkers:
        wait_for(lambda: w.round_trip(f"again-{w.client_id}"), timeout=10,
                 what=f"{w.client_id} round trip")
    for w in walkers:
        token = f"from-a-{w.client_id}"
        feeder.publish(w.topic, token, 0)
        wait_for(lambda: token in w.received, timeout=5, what=f"{w.client_id} hears a")
