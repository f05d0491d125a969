"""How the proxy spreads clients over three brokers, for each strategy: 300 clients are held
connected and counted where they landed, on the brokers (sb_broker_connections) and on the proxy
(/api/pools "active"), which must agree. (Which clients come back where: test_proxy_sticky.py.)"""
import math

import pytest

from conftest import wait_for
from proxy_fixtures import backend, brokers, conns, pool, start_proxy  # noqa: F401 (fixtures)

CLIENTS = 300


def hold_clients(proxy, conns, n, prefix, version=4):
    """Connects `n` clients one after the other (each waits for its CONNACK, so the proxy's counts
    are current before the next choice) and keeps them open."""
    held = []
    for i in range(n):
        c = conns.wire(proxy.port, version=version)
        assert c.connect(f"{prefix}-{i}").reason() == 0
        held.append(c)
    return held


def broker_counts(bs, total):
    """{name: sb_broker_connections} once the brokers together hold `total` connections."""
    def counts():
        c = {b.name: int(b.metric("sb_broker_connections")) for b in bs}
        return c if sum(c.values()) == total else None
    return wait_for(counts, what=f"{total} connections on the brokers")


@pytest.mark.parametrize("threads", [1, 2])
def test_weighted_round_robin_gives_exact_shares(brokers, start_proxy, conns, threads):
    # With two I/O threads the clients are accepted by either (SO_REUSEPORT hashes them): the
    # threads share the pool's rotation, so the shares are exact in total, not per thread.
    b1, b2, b3 = brokers(3)
    proxy = start_proxy({"p": pool(backend(b1, weight=3), backend(b2, weight=2),
                                   backend(b3, weight=1), strategy="weighted-round-robin")},
                        threads=threads)
    hold_clients(proxy, conns, CLIENTS, "wrr")
    assert broker_counts([b1, b2, b3], CLIENTS) == {"b1": 150, "b2": 100, "b3": 50}
    assert proxy.active() == {"b1": 150, "b2": 100, "b3": 50}


@pytest.mark.parametrize("weights,expected", [((1, 1, 1), (100, 100, 100)),
                                              ((3, 2, 1), (150, 100, 50))],
                         ids=["equal", "3-2-1"])
def test_least_connections_balances_held_connections(brokers, start_proxy, conns, weights,
                                                     expected):
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*[backend(b, weight=w) for b, w in zip(bs, weights)],
                                   strategy="least-connections")})
    hold_clients(proxy, conns, CLIENTS, "lc")
    counts = broker_counts(bs, CLIENTS)
    for b, want in zip(bs, expected):
        assert abs(counts[b.name] - want) <= 1, counts
    assert proxy.active() == counts


def test_least_connections_refills_the_emptiest_broker(brokers, start_proxy, conns):
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="least-connections")})
    placed = {}
    for i in range(60):
        c = conns.wire(proxy.port, version=4)
        reply, name = proxy.landing(lambda c=c, i=i: c.connect(f"lc-{i}"))
        assert reply.reason() == 0
        placed.setdefault(name, []).append(c)
    assert {n: len(cs) for n, cs in placed.items()} == {"b1": 20, "b2": 20, "b3": 20}

    # Free 10 places on b1: the next 10 clients all go there, not round the pool.
    for c in placed["b1"][:10]:
        c.disconnect()
        c.close()
    wait_for(lambda: proxy.active()["b1"] == 10, what="b1 down to 10 connections")
    for i in range(10):
        c = conns.wire(proxy.port, version=4)
        reply, name = proxy.landing(lambda c=c, i=i: c.connect(f"refill-{i}"))
        assert reply.reason() == 0
        assert name == "b1", f"refill {i} went to {name}: {proxy.active()}"
    assert broker_counts(bs, 60) == {"b1": 20, "b2": 20, "b3": 20}


def test_source_hash_on_client_id_follows_weights(brokers, start_proxy, conns):
    b1, b2, b3 = brokers(3)
    proxy = start_proxy({"p": pool(backend(b1, weight=1), backend(b2, weight=1),
                                   backend(b3, weight=2), strategy="source-hash",
                                   hash_key="client-id")})
    hold_clients(proxy, conns, CLIENTS, "sh")
    counts = broker_counts([b1, b2, b3], CLIENTS)
    assert proxy.active() == counts
    # The ids are fixed, so the outcome is deterministic; the tolerance says how far from the
    # weights a fair hash may land with 300 keys: four binomial standard deviations,
    # sqrt(300 x 0.25 x 0.75) = 7.5 for a 25 % share and sqrt(300 x 0.5 x 0.5) = 8.7 for 50 %,
    # plus the Maglev table's own unevenness (under 1 % of 65537 slots). A strategy that ignored
    # the weights (100 each) or hashed the source address (all 300 on one broker) is far outside.
    for name, share in (("b1", 0.25), ("b2", 0.25), ("b3", 0.5)):
        sigma = math.sqrt(CLIENTS * share * (1 - share))
        assert abs(counts[name] - CLIENTS * share) <= 4 * sigma + 0.01 * CLIENTS, counts


def test_the_maglev_table_has_the_configured_size(brokers, start_proxy, conns):
    # Five slots for three backends: one of them owns one slot, the others two, so it gets a
    # fifth of the clients, not the third it gets of 65,537 slots: about 60 of 300 (a standard
    # deviation of 7), against 100. The ids are fixed, so the outcome is too.
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="source-hash", maglev_table_size=5)})
    hold_clients(proxy, conns, CLIENTS, "tiny")
    counts = broker_counts(bs, CLIENTS)
    assert min(counts.values()) < 80, counts


def test_a_full_backend_is_skipped_and_a_full_pool_refuses(brokers, start_proxy, conns):
    b1, b2 = brokers(2)
    limited = [{**backend(b1), "max_connections": 2}, {**backend(b2), "max_connections": 3}]
    proxy = start_proxy({"p": pool(*limited, strategy="weighted-round-robin", sticky=True)})
    held = hold_clients(proxy, conns, 5, "held")
    assert proxy.active() == {"b1": 2, "b2": 3}
    assert proxy.backends()["b1"]["max_connections"] == 2
    # Full: a sixth client is told the server is unavailable (CONNACK 0x88), not sent on.
    extra = conns.wire(proxy.port, version=5)
    assert extra.connect("extra").reason() == 0x88
    assert proxy.rejected("no_backend") == 1
    # A sticky client whose broker is full goes to another one with room: here b2, once a reload
    # has raised its limit.
    held[0].close()  # held-0 landed on b1 (round robin starts there)
    wait_for(lambda: proxy.active() == {"b1": 1, "b2": 3}, what="held-0 gone")
    assert hold_clients(proxy, conns, 1, "b1-again")  # takes b1's free place
    limited[1]["max_connections"] = 4
    proxy.reload({"p": pool(*limited, strategy="weighted-round-robin", sticky=True)})
    _, landed = proxy.landing(lambda: conns.wire(proxy.port, version=4).connect("held-0"))
    assert landed == "b2"
