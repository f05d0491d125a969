"""The same client comes back to the same broker across reconnects: by the sticky table of a
least-connections pool, by hashing its client id, or by hashing its source address. Each test
reconnects while the rest of the pool's load changes, so that a strategy that merely happened to
choose the same broker again would be caught."""
import time

from conftest import wait_for
from proxy_fixtures import brokers, conns, pool, start_proxy  # noqa: F401 (fixtures)

ROUNDS = 3


def connect_once(proxy, conns, client_id, source_ip=None):
    """Connects `client_id`, returns (the open client, the backend it reached)."""
    c = conns.wire(proxy.port, version=4, source_ip=source_ip)
    reply, name = proxy.landing(lambda: c.connect(client_id))
    assert reply.reason() == 0
    return c, name


def leave(proxy, c):
    """Disconnects and waits until the proxy has released the connection."""
    before = sum(proxy.active().values())
    c.disconnect()
    c.close()
    wait_for(lambda: sum(proxy.active().values()) == before - 1, what="the connection released")


def test_sticky_least_connections_brings_a_client_back(brokers, start_proxy, conns):
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="least-connections", sticky=True)})
    ids = [f"sticky-{i}" for i in range(6)]
    home = {}
    for cid in ids:
        c, home[cid] = connect_once(proxy, conns, cid)
        leave(proxy, c)
    # Every id started somewhere, and not all in one place: least connections spread them.
    assert len(set(home.values())) == 3, home

    ballast = []
    for r in range(ROUNDS):
        # Load the home of the first id, so that least connections alone would avoid it.
        for i in range(3):
            c, _ = connect_once(proxy, conns, f"ballast-{r}-{i}")
            ballast.append(c)
        for cid in ids:
            c, name = connect_once(proxy, conns, cid)
            assert name == home[cid], f"round {r}: {cid} went to {name}, not {home[cid]}"
            leave(proxy, c)


def test_source_hash_on_client_id_brings_a_client_back(brokers, start_proxy, conns):
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="source-hash", hash_key="client-id")})
    ids = [f"hash-{i}" for i in range(9)]
    home = {}
    for cid in ids:
        c, home[cid] = connect_once(proxy, conns, cid)
        leave(proxy, c)
    assert len(set(home.values())) > 1, f"all ids on one broker: {home}"
    for r in range(ROUNDS):
        held = [connect_once(proxy, conns, f"other-{r}-{i}")[0] for i in range(4)]
        for cid in ids:
            c, name = connect_once(proxy, conns, cid)
            assert name == home[cid], f"round {r}: {cid} went to {name}, not {home[cid]}"
            leave(proxy, c)
        for c in held:
            leave(proxy, c)


def test_source_hash_on_source_ip_ignores_the_client_id(brokers, start_proxy, conns):
    # Linux routes all of 127.0.0.0/8 to loopback: each address below is a distinct client host.
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="source-hash", hash_key="source-ip")})
    sources = [f"127.0.0.{i}" for i in range(2, 22)]
    home = {}
    for ip in sources:
        c, home[ip] = connect_once(proxy, conns, f"first-{ip}", source_ip=ip)
        leave(proxy, c)
    assert len(set(home.values())) > 1, f"every address hashed to one broker: {home}"
    for r in range(ROUNDS):
        for ip in sources:
            # A new client id each time: only the address may decide.
            c, name = connect_once(proxy, conns, f"round-{r}-{ip}", source_ip=ip)
            assert name == home[ip], f"round {r}: {ip} went to {name}, not {home[ip]}"
            leave(proxy, c)


def test_sticky_record_lives_while_its_client_is_connected(brokers, start_proxy, conns):
    # sticky_ttl_s = 1: the record must be refreshed while the client stays connected, so that
    # a client connected for longer than the TTL still comes back to its broker.
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="least-connections", sticky=True,
                                   sticky_ttl_s=1)}, threads=1)
    ids = [f"long-{i}" for i in range(6)]
    held = {}
    home = {}
    for cid in ids:
        held[cid], home[cid] = connect_once(proxy, conns, cid)
    # Connected for 2.5 TTLs. A deliberate wait: it proves that the records do NOT expire.
    time.sleep(2.5)
    for cid in ids:
        leave(proxy, held[cid])
    for cid in reversed(ids):  # the other order: rotation alone would not match
        c, name = connect_once(proxy, conns, cid)
        assert name == home[cid], f"{cid} went to {name}, not {home[cid]}"
        leave(proxy, c)


def test_sticky_record_follows_the_client_after_a_failover(brokers, start_proxy, conns):
    # The home becomes unusable (drained here), the client moves, and the record moves with it:
    # its session now lives on the new broker, so it stays there when the old one returns.
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="least-connections", sticky=True)})
    c, home = connect_once(proxy, conns, "mover")
    leave(proxy, c)
    assert proxy.post(f"/api/backends/{home}/drain")[0] == 200
    c, moved_to = connect_once(proxy, conns, "mover")
    assert moved_to != home
    leave(proxy, c)
    assert proxy.post(f"/api/backends/{home}/enable")[0] == 200
    for _ in range(ROUNDS):
        c, name = connect_once(proxy, conns, "mover")
        assert name == moved_to
        leave(proxy, c)


def test_source_hash_moves_only_the_keys_of_a_lost_backend(brokers, start_proxy, conns):
    # Consistent hashing: when b3 leaves the pool, the ids that were on b1 and b2 stay there.
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="source-hash", hash_key="client-id")})
    ids = [f"stable-{i}" for i in range(30)]
    home = {}
    for cid in ids:
        c, home[cid] = connect_once(proxy, conns, cid)
        leave(proxy, c)
    assert set(home.values()) == {"b1", "b2", "b3"}, home
    assert proxy.post("/api/backends/b3/drain")[0] == 200
    for cid in ids:
        c, name = connect_once(proxy, conns, cid)
        if home[cid] == "b3":
            assert name in ("b1", "b2")
        else:
            assert name == home[cid], f"{cid} moved from {home[cid]} to {name}"
        leave(proxy, c)
