"""Several proxies acting as one through a real redis-server (issue: shared state): stickiness
across instances, least-connections over the sum of every proxy's connections, drains and
weights reaching every proxy and outliving restarts, a killed proxy's counts expiring, and Redis
going away and coming back without dropping a connection."""
import signal
import time

import pytest

from conftest import clock_off_by, wait_for
from mqtt_wire import CONNACK, connect_packet
from proxy_fixtures import (FAST_HEALTH, backend, brokers, conns, free_port, is_open, pool,  # noqa: F401
                            redis_server, start_proxy)


def totals(*proxies):
    """Connections per backend over the whole tier, from each proxy's own counts."""
    out = {}
    for p in proxies:
        for name, n in p.active().items():
            out[name] = out.get(name, 0) + n
    return out


def remote(proxy):
    return {name: b["remote_active"] for name, b in proxy.backends().items()}


def operator(proxy):
    return {name: (b["draining"], b["weight"]) for name, b in proxy.backends().items()}


def start_tier(start_proxy, redis, backends, n=2, redis_extra=None, redis_url=None,
               **pool_settings):
    """n proxies sharing `redis` (at `redis_url`, default its own), each with one pool "brokers"
    of `backends`."""
    cfg = {"url": redis_url or redis.url, **(redis_extra or {})}
    return [start_proxy({"brokers": pool(*backends, **pool_settings)}, name=f"p{i}", redis=cfg)
            for i in range(1, n + 1)]


def test_sticky_across_proxies(brokers, start_proxy, conns, redis_server):
    bs = brokers(3)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="least-connections", sticky=True)
    for i in range(6):
        client_id = f"roamer-{i}"
        first_wire = conns.wire(a.port)
        first, landed = a.landing(lambda: first_wire.connect(client_id))
        assert first.reason() == 0
        first_wire.close()
        wait_for(lambda: sum(a.active().values()) == 0, what="the first connection gone")
        # Through the other proxy, the same client goes back to the broker holding its session.
        second_wire = conns.wire(b.port)
        again, landed_again = b.landing(lambda: second_wire.connect(client_id))
        assert again.reason() == 0
        assert landed_again == landed, client_id
        second_wire.close()
        wait_for(lambda: sum(b.active().values()) == 0, what="the second connection gone")
    assert redis_server.command("EXISTS", "sb:sticky:brokers:roamer-0") == "1"


def test_two_proxies_with_one_instance_name_are_told(brokers, start_proxy, redis_server):
    """Two proxies configured with the same `instance` overwrite each other's counts and health
    votes in Redis: each says so, in its log and in /metrics, until the other is gone."""
    bs = brokers(2)
    redis = {"url": redis_server.url}
    a = start_proxy({"brokers": pool(*bs)}, name="a", instance="twin", redis=redis)
    b = start_proxy({"brokers": pool(*bs)}, name="b", instance="twin", redis=redis)
    c = start_proxy({"brokers": pool(*bs)}, name="c", redis=redis)
    for p in (a, b):
        wait_for(lambda p=p: p.metric("sb_proxy_instance_shared") == 1, what=f"{p.name} told")
        assert 'proxy instance "twin" is in use by another process too' in p.log()
    assert c.metric("sb_proxy_instance_shared") == 0
    b.stop()
    # Once b has been silent for the liveness window (3 s).
    wait_for(lambda: a.metric("sb_proxy_instance_shared") == 0, timeout=10, what="a alone again")


def test_two_tiers_share_one_redis_apart_by_prefix(brokers, start_proxy, conns, redis_server):
    bs = brokers(2)
    a = start_proxy({"brokers": pool(*bs, sticky=True)}, name="a",
                    redis={"url": redis_server.url, "prefix": "tier-a:"})
    b = start_proxy({"brokers": pool(*bs, sticky=True)}, name="b",
                    redis={"url": redis_server.url, "prefix": "tier-b:"})
    _, landed = a.landing(lambda: conns.wire(a.port).connect("only-in-a"))
    wait_for(lambda: redis_server.command("EXISTS", "tier-a:sticky:brokers:only-in-a") == "1",
             what="a's sticky record")
    assert redis_server.command("EXISTS", "tier-b:sticky:brokers:only-in-a") == "0"
    # Each tier reads and writes its own keys only: its heartbeats, and an operator's drain.
    assert a.post(f"/api/backends/{landed}/drain")[0] == 200
    wait_for(lambda: "draining=1" in redis_server.command("HGET", "tier-a:operator",
                                                          f"brokers/{landed}"),
             what="the drain in a's tier")
    assert redis_server.command("EXISTS", "tier-b:operator") == "0"
    for tier, name in (("tier-a", "a"), ("tier-b", "b")):
        key = f"{tier}:conns:{name}"  # written in the same round as the heartbeat, after it
        wait_for(lambda k=key: redis_server.command("EXISTS", k) == "1",
                 what=f"{name}'s counts in its tier")
        assert redis_server.command("ZRANGE", f"{tier}:proxies", 0, -1) == name
    assert all(k.startswith(("tier-a:", "tier-b:"))
               for k in redis_server.command("KEYS", "*").split()), "a key without a prefix"
    assert operator(b)[landed] == (False, 1)


def test_a_tier_behind_a_redis_password(brokers, start_proxy, conns, redis_server):
    redis_server.command("CONFIG", "SET", "requirepass", "s3cret")
    bs = brokers(2)
    a, b = start_tier(start_proxy, redis_server, bs, sticky=True,
                      redis_url=f"redis://:s3cret@127.0.0.1:{redis_server.port}")
    for p in (a, b):
        wait_for(lambda p=p: p.metric("sb_proxy_tier_proxies") == 2, what="both proxies live")
        assert p.metric("sb_proxy_degraded") == 0
        assert "s3cret" not in p.log()
    first = conns.wire(a.port)
    _, landed = a.landing(lambda: first.connect("behind-a-password"))
    first.close()
    wait_for(lambda: sum(a.active().values()) == 0, what="the first connection gone")
    _, again = b.landing(lambda: conns.wire(b.port).connect("behind-a-password"))
    assert again == landed
    assert redis_server.command("EXISTS", "sb:sticky:brokers:behind-a-password",
                                password="s3cret") == "1"


def test_two_proxies_agree_on_a_new_client(brokers, start_proxy, conns, redis_server):
    # The same new client id through both proxies at (nearly) the same moment: one record wins
    # and both follow it.
    bs = brokers(3)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="least-connections", sticky=True)
    for i in range(10):
        client_id = f"twin-{i}"
        wa, wb = conns.wire(a.port), conns.wire(b.port)
        wa.send(connect_packet(client_id))
        wb.send(connect_packet(client_id))
        # Each connection is placed before its CONNACK comes back (the later one then takes over).
        wa.expect(CONNACK)
        wb.expect(CONNACK)
        wait_for(lambda: redis_server.command("GET", f"sb:sticky:brokers:{client_id}") != "",
                 what="the sticky record")
        held = redis_server.command("GET", f"sb:sticky:brokers:{client_id}")
        # Whichever connection the broker kept, both went to the recorded broker.
        assert totals(a, b).get(held, 0) >= 1, (held, totals(a, b))
        assert all(n == 0 for name, n in totals(a, b).items() if name != held), totals(a, b)
        wa.close()
        wb.close()
        wait_for(lambda: sum(totals(a, b).values()) == 0, what="both connections gone")


def test_least_connections_counts_every_proxy(brokers, start_proxy, conns, redis_server):
    bs = brokers(3)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="least-connections")
    for i in range(30):
        proxy = a if i % 2 == 0 else b
        other = b if proxy is a else a
        _, _ = proxy.landing(lambda: conns.wire(proxy.port).connect(f"lc-{i}"))
        # Before the next client, the other proxy has heard of this one (every 100 ms).
        expected = sum(a.active().values()) + sum(b.active().values())
        wait_for(lambda: sum(remote(other).values()) + sum(other.active().values()) == expected,
                 what="the other proxy's view of this connection")
    t = totals(a, b)
    assert sum(t.values()) == 30
    assert max(t.values()) - min(t.values()) <= 1, t


def test_drain_and_weight_reach_every_proxy_and_outlive_a_restart(brokers, start_proxy, conns,
                                                                   redis_server):
    bs = brokers(3)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="weighted-round-robin")
    assert a.post("/api/backends/b1/drain")[0] == 200
    wait_for(lambda: operator(b)["b1"][0], timeout=1.0,
             what="the drain on the other proxy within a second")
    for i in range(6):
        _, landed = b.landing(lambda: conns.wire(b.port).connect(f"d-{i}"))
        assert landed != "b1"
    assert b.post("/api/backends/b2/weight", b"5")[0] == 200
    wait_for(lambda: operator(a)["b2"][1] == 5, timeout=1.0,
             what="the weight on the other proxy within a second")
    # A proxy started later, or restarted, reads the operator's changes back from Redis.
    c = start_proxy({"brokers": pool(*bs, strategy="weighted-round-robin")}, name="p3",
                    redis={"url": redis_server.url})
    wait_for(lambda: operator(c) == {"b1": (True, 1), "b2": (False, 5), "b3": (False, 1)},
             what="the operator changes on a new proxy")
    assert a.post("/api/backends/b1/enable")[0] == 200
    wait_for(lambda: not operator(c)["b1"][0], timeout=1.0,
             what="the end of the drain everywhere")


def test_operator_changes_lost_by_redis_are_written_again(brokers, start_proxy, conns,
                                                         redis_server):
    # Redis restarted without persistence (here: flushed) forgets a drain and a weight still in
    # force on the running proxies; they write them again, so a proxy started after learns them
    # (before, the new proxy sent clients to the drained backend).
    bs = brokers(2)
    (a,) = start_tier(start_proxy, redis_server, bs, n=1, strategy="weighted-round-robin")
    assert a.post("/api/backends/b1/drain")[0] == 200
    assert a.post("/api/backends/b2/weight", b"4")[0] == 200
    redis_server.command("FLUSHALL")
    wait_for(lambda: redis_server.command("HLEN", "sb:operator") == "2",
             what="the changes written again")
    c = start_proxy({"brokers": pool(*bs, strategy="weighted-round-robin")}, name="p3",
                    redis={"url": redis_server.url})
    wait_for(lambda: operator(c) == {"b1": (True, 1), "b2": (False, 4)},
             what="the operator changes on a new proxy")
    _, landed = c.landing(lambda: conns.wire(c.port).connect("after-the-flush"))
    assert landed == "b2"


def test_a_killed_proxys_counts_expire(brokers, start_proxy, conns, redis_server):
    bs = brokers(2)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="least-connections")
    for i in range(4):
        conns.wire(b.port).connect(f"k-{i}")
    wait_for(lambda: sum(remote(a).values()) == 4, what="b's connections seen from a")
    b.signal(signal.SIGKILL)
    wait_for(lambda: sum(remote(a).values()) == 0, timeout=6,
             what="the dead proxy's counts expired")
    assert a.metric("sb_proxy_tier_proxies") == 1


def test_a_proxy_whose_clock_is_behind_still_counts(brokers, start_proxy, conns, redis_server):
    """Liveness is judged on Redis's clock: a proxy 30 s behind is neither dead to the others
    nor are its counts ignored."""
    bs = brokers(2)
    pools = {"brokers": pool(*bs, strategy="least-connections")}
    a = start_proxy(pools, name="p1", redis={"url": redis_server.url})
    late = start_proxy(pools, name="late", redis={"url": redis_server.url}, env=clock_off_by(-30))
    for i in range(3):
        conns.wire(late.port).connect(f"late-{i}")
    wait_for(lambda: sum(remote(a).values()) == 3, what="the late proxy's connections seen")
    assert a.metric("sb_proxy_tier_proxies") == 2
    wait_for(lambda: late.metric("sb_proxy_tier_proxies") == 2, what="p1 seen from the late one")


def test_redis_outage_drops_nothing_and_the_tier_converges(brokers, start_proxy, conns,
                                                          redis_server):
    bs = brokers(3)
    a, b = start_tier(start_proxy, redis_server, bs, strategy="least-connections", sticky=True)
    held = [conns.wire(a.port if i % 2 else b.port) for i in range(6)]
    for i, w in enumerate(held):
        assert w.connect(f"held-{i}").reason() == 0
    wait_for(lambda: sum(remote(a).values()) == 3, what="counts shared before the outage")

    redis_server.stop()
    wait_for(lambda: a.metric("sb_proxy_degraded") == 1 and b.metric("sb_proxy_degraded") == 1,
             what="both proxies degraded")
    # Every held connection still works, and new clients still connect, sticky or not.
    for w in held:
        assert is_open(w)
    for i in range(4):
        assert conns.wire(a.port).connect(f"during-{i}").reason() == 0
    assert "degraded" in a.log()

    redis_server.start()  # an empty Redis: the outage lost everything it held
    wait_for(lambda: a.metric("sb_proxy_degraded") == 0 and b.metric("sb_proxy_degraded") == 0,
             timeout=10, what="both proxies re-synced")
    # Counts are published again without a restart: each sees the other's live connections.
    total = sum(totals(a, b).values())
    wait_for(lambda: sum(remote(a).values()) + sum(a.active().values()) == total,
             what="the counts re-published")
    # A sticky record made during the outage was written back.
    wait_for(lambda: redis_server.command("EXISTS", "sb:sticky:brokers:during-0") == "1",
             what="records of the outage written back")
    for w in held:
        assert is_open(w)


def two_proxies_one_sees_b2_down(brokers, start_proxy, redis_server, policy):
    """Proxies a and b under `policy` in front of b1 and b2; a checks b2 at a port where nothing
    listens, so a alone sees b2 down. Returns (a, b) once a does."""
    bs = brokers(2)
    dead = free_port()
    redis = {"url": redis_server.url, "health_policy": policy}
    a = start_proxy({"brokers": pool(backend(bs[0]), {**backend(bs[1]),
                                                        "check_address": f"127.0.0.1:{dead}"},
                                     health=dict(FAST_HEALTH))}, name="p1", redis=redis)
    b = start_proxy({"brokers": pool(*bs, health=dict(FAST_HEALTH))}, name="p2", redis=redis)
    a.wait_state("b2", "down")
    return a, b


def test_health_policy_any_takes_a_backend_down_everywhere(brokers, start_proxy, conns,
                                                           redis_server):
    _, b = two_proxies_one_sees_b2_down(brokers, start_proxy, redis_server, "any")
    wait_for(lambda: b.state("b2") == "down", what="b2 down for the tier on b")
    assert b.metric('sb_proxy_backend_down_for_all{pool="brokers",backend="b2"}') == 1
    for i in range(4):
        _, landed = b.landing(lambda: conns.wire(b.port).connect(f"any-{i}"))
        assert landed == "b1"


def test_a_passive_ejection_stays_with_the_proxy_that_made_it(brokers, start_proxy, conns,
                                                              redis_server):
    # Proxy p1 knows b2 at an address where nothing listens (no active checks): its connects fail
    # and it ejects b2. That is its own experience, as Envoy's outlier detection is each Envoy's:
    # p2, which reaches b2, keeps using it ("any" policy; several view rounds).
    bs = brokers(2)
    redis = {"url": redis_server.url, "health_policy": "any"}
    unreachable = {"name": "b2", "address": f"127.0.0.1:{free_port()}"}
    p1 = start_proxy({"brokers": pool(backend(bs[0]), unreachable)}, name="p1", redis=redis)
    p2 = start_proxy({"brokers": pool(*bs)}, name="p2", redis=redis)
    for i in range(4):  # round robin: every other one fails over from b2 to b1
        assert conns.wire(p1.port).connect(f"p1-{i}").reason() == 0
    p1.wait_state("b2", "ejected")
    wait_for(lambda: p2.metric("sb_proxy_tier_proxies") == 2, what="both proxies live")
    landed = set()
    for i in range(6):
        _, backend_name = p2.landing(lambda i=i: conns.wire(p2.port).connect(f"p2-{i}"))
        landed.add(backend_name)
    assert landed == {"b1", "b2"}
    assert p2.state("b2") == "up"
    assert p2.metric('sb_proxy_backend_down_for_all{pool="brokers",backend="b2"}') == 0


def test_health_policy_majority_needs_more_than_half(brokers, start_proxy, conns, redis_server):
    _, b = two_proxies_one_sees_b2_down(brokers, start_proxy, redis_server, "majority")
    wait_for(lambda: b.metric("sb_proxy_tier_proxies") == 2, what="both proxies live")
    # One vote of two is not a majority: b keeps using b2 (checked over several view rounds).
    landed = set()
    for i in range(6):
        _, backend_name = b.landing(lambda: conns.wire(b.port).connect(f"maj-{i}"))
        landed.add(backend_name)
    assert "b2" in landed
    assert b.state("b2") == "up"


def test_health_policy_majority_takes_a_backend_down_with_two_votes_of_three(
        brokers, start_proxy, conns, redis_server):
    bs = brokers(2)
    dead = free_port()
    redis = {"url": redis_server.url, "health_policy": "majority"}
    blind = {**backend(bs[1]), "check_address": f"127.0.0.1:{dead}"}  # sees b2 down
    voters = [start_proxy({"brokers": pool(backend(bs[0]), blind, health=dict(FAST_HEALTH))},
                          name=f"p{i}", redis=redis) for i in (1, 2)]
    c = start_proxy({"brokers": pool(*bs, health=dict(FAST_HEALTH))}, name="p3", redis=redis)
    for v in voters:
        v.wait_state("b2", "down")
    # Two votes of three live proxies are a majority: c takes b2 down, although its own checks
    # pass.
    wait_for(lambda: c.state("b2") == "down", what="b2 down for the tier on c")
    assert c.metric("sb_proxy_tier_proxies") == 3
    assert c.metric('sb_proxy_backend_down_for_all{pool="brokers",backend="b2"}') == 1
    assert c.backend_metric("sb_proxy_backend_checks_failed_total", "b2", "brokers") == 0
    for i in range(4):
        _, landed = c.landing(lambda i=i: conns.wire(c.port).connect(f"majority-{i}"))
        assert landed == "b1"


def test_a_frozen_redis_is_an_outage(brokers, start_proxy, conns, redis_server):
    # A stopped redis-server still completes TCP handshakes in the kernel. Taken for a connection,
    # every sticky client would wait a command timeout, and the proxy would not say it is degraded.
    (a,) = start_tier(start_proxy, redis_server, brokers(2), n=1, sticky=True)
    assert conns.wire(a.port).connect("before").reason() == 0
    redis_server.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: a.metric("sb_proxy_degraded") == 1, what="the proxy degraded")
        for i in range(3):
            assert conns.wire(a.port).connect(f"frozen-{i}").reason() == 0
        # and degraded it stays, through its attempts to reconnect
        window = time.monotonic() + 1.5  # a deliberate window: reconnects after 0.1, 0.2, 0.4 s
        while time.monotonic() < window:
            assert a.metric("sb_proxy_degraded") == 1
    finally:
        redis_server.signal(signal.SIGCONT)
    wait_for(lambda: a.metric("sb_proxy_degraded") == 0, timeout=10, what="the proxy re-synced")


@pytest.mark.parametrize("setup,url_suffix,why", [
    (("CONFIG", "SET", "requirepass", "secret"), "", "NOAUTH"),
    ((), "/99", "DB index is out of range"),
], ids=["password", "no-such-db"])
def test_a_redis_that_refuses_commands_is_an_outage(brokers, start_proxy, conns, redis_server,
                                                    setup, url_suffix, why):
    if setup:
        redis_server.command(*setup)
    (a,) = start_tier(start_proxy, redis_server, brokers(2), n=1, sticky=True,
                      redis_url=redis_server.url + url_suffix)
    wait_for(lambda: why in a.log(), what="the refusal logged")
    assert a.metric("sb_proxy_degraded") == 1
    assert conns.wire(a.port).connect("anyway").reason() == 0


def test_a_long_outage_drops_the_other_proxies_verdicts(brokers, start_proxy, conns,
                                                        redis_server):
    # b2 is down for the tier because a sees it down. With Redis gone, a's vote can no longer be
    # renewed: after the liveness window b goes by its own checks, which see b2 up.
    _, b = two_proxies_one_sees_b2_down(brokers, start_proxy, redis_server, "any")
    wait_for(lambda: b.state("b2") == "down", what="b2 down for the tier on b")
    redis_server.stop()
    wait_for(lambda: b.state("b2") == "up", timeout=10, what="b's own verdict on b2 again")
    assert b.metric('sb_proxy_backend_down_for_all{pool="brokers",backend="b2"}') == 0
    assert b.metric("sb_proxy_tier_proxies") == 1
    landed = {b.landing(lambda i=i: conns.wire(b.port).connect(f"own-view-{i}"))[1]
              for i in range(2)}
    assert landed == {"b1", "b2"}  # round robin over both again
