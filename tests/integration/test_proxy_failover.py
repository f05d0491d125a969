"""Failover: a broker killed or frozen under its clients, a backend nobody listens on, a pool with
nothing usable left, and backups that serve only then (and hand their clients back). Health checks run at test speed (proxy_fixtures.FAST_HEALTH); every
deadline below is derived from the configured detection time, fall x fast_interval + timeout."""
import datetime
import os
import resource
import signal
import socket
import time

import pytest

from conftest import start_broker, wait_for  # noqa: F401
from mqtt_wire import CONNACK, DISCONNECT, connect_packet, packet
from proxy_fixtures import (FAST_HEALTH, backend, brokers, conns, detection_ms,  # noqa: F401
                            dropping_port, hung_port, is_closed, is_open, pool, restart_broker,
                            silent_port, start_proxy, tcp_sockets)


def test_kill_9_clients_fail_over_and_the_broker_comes_back(brokers, start_proxy, conns, tmp_path,
                                                            processes):
    bs = brokers(3)
    proxy = start_proxy({"p": pool(*bs, strategy="least-connections",
                                   on_down="shutdown-sessions", shutdown_jitter_ms=300,
                                   health=FAST_HEALTH)})
    home = {}
    for i in range(6):
        c, home[f"fo-{i}"] = proxy.landing(lambda i=i: conns.reconnecting(proxy.port, f"fo-{i}"))
    clients = [c for c in conns.open]
    assert sorted(home.values()) == ["b1", "b1", "b2", "b2", "b3", "b3"]
    for c in clients:
        wait_for(lambda c=c: c.round_trip("before"), what=f"{c.client_id} round trip")

    # Twice the configured detection time: 2 x (2 x 200 + 150) ms = 1.1 s, from the kill to
    # (a) the proxy showing b1 down and (b) every client of b1 reconnected elsewhere with a
    # working subscribe/publish round trip (each on its own, new, broker: no cluster yet).
    window = 2 * detection_ms(FAST_HEALTH) / 1000
    victim = bs[0]
    killed_at = time.monotonic()
    victim.kill()
    orphans = [c for c in clients if home[c.client_id] == "b1"]
    for c in clients:
        wait_for(lambda c=c: c.round_trip("after"), timeout=window,
                 what=f"{c.client_id} round trip after the kill")
    proxy.wait_state("b1", "down", timeout=max(0.0, window - (time.monotonic() - killed_at)))
    assert time.monotonic() - killed_at <= window
    assert all(c.connections == 2 for c in orphans), [c.connections for c in orphans]
    assert proxy.active()["b1"] == 0
    assert sum(int(b.metric("sb_broker_connections")) for b in bs[1:]) == 6

    # Back on the same ports: rise (2 good checks) brings it up, and least connections sends it
    # the next clients, since it is the emptiest: at least two, as b2 and b3 hold 6 between them.
    restart_broker(victim, tmp_path, processes)
    proxy.wait_state("b1", "up", timeout=2 * detection_ms(FAST_HEALTH) / 1000 + 1)
    for i in range(2):
        c = conns.wire(proxy.port, version=4)
        reply, name = proxy.landing(lambda c=c, i=i: c.connect(f"new-{i}"))
        assert reply.reason() == 0 and name == "b1", (i, name, proxy.active())


def test_a_backup_serves_only_while_no_other_backend_can(brokers, start_proxy, conns):
    # An active/standby pair as HAProxy's `backup` gives it: the standby takes no client while
    # one of the others can, takes every client of the last one to go down (within twice the
    # detection time, as any failover), and gives the new ones back once another can again: a
    # sticky client too, which the standby's record no longer holds.
    b1, b2, standby = brokers(3)
    proxy = start_proxy({"p": pool(b1, b2, dict(backend(standby), backup=True),
                                   strategy="weighted-round-robin", sticky=True,
                                   health=FAST_HEALTH)})
    assert {n: b["backup"] for n, b in proxy.backends().items()} == {
        "b1": False, "b2": False, "b3": True}  # b3: the standby
    home = {}
    for i in range(4):
        c, home[f"bk-{i}"] = proxy.landing(lambda i=i: conns.reconnecting(proxy.port, f"bk-{i}"))
    assert sorted(home.values()) == ["b1", "b1", "b2", "b2"]

    status, _ = proxy.post("/api/backends/b1/drain")  # out for new clients, as good as down
    assert status == 200
    c = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: c.connect("while-b1-drains"))
    assert reply.reason() == 0 and name == "b2"

    killed_at = time.monotonic()
    b2.kill()
    window = 2 * detection_ms(FAST_HEALTH) / 1000
    orphans = [c for c in conns.open if getattr(c, "client_id", None) in home
               and home[c.client_id] == "b2"]
    for c in orphans:
        wait_for(lambda c=c: c.round_trip("on the standby"), timeout=window,
                 what=f"{c.client_id} round trip on the standby")
    assert time.monotonic() - killed_at <= window
    assert all(c.connections == 2 for c in orphans), [c.connections for c in orphans]
    proxy.wait_state("b2", "down")
    assert proxy.active() == {"b1": 2, "b2": 0, "b3": 2}

    status, _ = proxy.post("/api/backends/b1/enable")
    assert status == 200
    c = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: c.connect("after-b1-is-back"))
    assert reply.reason() == 0 and name == "b1"
    # A client the standby holds, reconnecting: back to b1, not to its sticky record.
    returning = orphans[0].client_id
    orphans[0].close()
    wait_for(lambda: proxy.active()["b3"] == 1, what="the standby's client gone")
    c = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: c.connect(returning))
    assert reply.reason() == 0 and name == "b1"


def test_on_up_hands_the_backups_clients_back(brokers, start_proxy, conns, tmp_path, processes):
    # on_up = "shutdown-backup-sessions" (HAProxy's on-marked-up shutdown-backup-sessions): once
    # the checks bring the first tier back, the backup's clients are closed, over the jitter, and
    # reconnect to it. Without it they would stay on the standby until they left by themselves.
    primary, standby = brokers(2)
    jitter_ms = 300
    proxy = start_proxy({"p": pool(primary, dict(backend(standby), backup=True),
                                   on_up="shutdown-backup-sessions", shutdown_jitter_ms=jitter_ms,
                                   health=FAST_HEALTH)},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "access_log": True}])
    clients = [proxy.landing(lambda i=i: conns.reconnecting(proxy.port, f"fb-{i}"))
               for i in range(3)]
    assert [name for _, name in clients] == ["b1"] * 3
    clients = [c for c, _ in clients]
    primary.kill()
    for c in clients:
        wait_for(lambda c=c: c.round_trip("on the standby"), what=f"{c.client_id} on the standby")
    proxy.wait_state("b1", "down", timeout=2 * detection_ms(FAST_HEALTH) / 1000)
    assert proxy.active() == {"b1": 0, "b2": 3}

    primary = restart_broker(primary, tmp_path, processes)
    proxy.wait_state("b1", "up", timeout=2 * detection_ms(FAST_HEALTH) / 1000 + 1)
    back_at = time.monotonic()
    for c in clients:
        wait_for(lambda c=c: c.connections == 3 and c.round_trip("back on the primary"),
                 timeout=jitter_ms / 1000 + 2, what=f"{c.client_id} back on the primary")
    assert time.monotonic() - back_at <= jitter_ms / 1000 + 2
    assert proxy.active() == {"b1": 3, "b2": 0}
    assert "closing the sessions of b2 over 300 ms (backup released)" in proxy.log()
    wait_for(lambda: proxy.log().count("backup released") == 4,  # the line above, and 3 clients
             what="the access log's lines for the released sessions")

    # Any way back counts, and only a way back: killed while drained, b1 comes up again by its
    # checks but still drains, which does not release the standby's clients; the operator's
    # enable does. Each client reconnects once more for the kill and once for the enable (a
    # release at the checks' verdict too would have made it twice).
    status, _ = proxy.post("/api/backends/b1/drain")
    assert status == 200
    primary.kill()
    for c in clients:
        wait_for(lambda c=c: c.connections == 4 and c.round_trip("drained: on the standby"),
                 what=f"{c.client_id} on the standby again")
    proxy.wait_state("b1", "down", timeout=2 * detection_ms(FAST_HEALTH) / 1000)
    restart_broker(primary, tmp_path, processes)
    proxy.wait_state("b1", "draining", timeout=2 * detection_ms(FAST_HEALTH) / 1000 + 1)
    # An absence: a release would have closed them within 100 ms (the proxy's look) and the
    # jitter of coming up; nothing else can say it did not happen.
    time.sleep(0.1 + jitter_ms / 1000 + 0.3)
    assert [c.connections for c in clients] == [4, 4, 4]
    assert proxy.active() == {"b1": 0, "b2": 3}
    status, _ = proxy.post("/api/backends/b1/enable")
    assert status == 200
    for c in clients:
        wait_for(lambda c=c: c.connections == 5 and c.round_trip("enabled: on the primary"),
                 timeout=jitter_ms / 1000 + 2, what=f"{c.client_id} back on the primary again")
    assert proxy.active() == {"b1": 3, "b2": 0}
    wait_for(lambda: proxy.log().count("backup released") == 8, what="the second release logged")
    assert [c.connections for c in clients] == [5, 5, 5]


def test_frozen_broker_sessions_are_shut_down_within_the_jitter(brokers, start_proxy, conns):
    # SIGSTOP keeps the broker's sockets open: only the proxy (on_down = "shutdown-sessions") can
    # end its clients' connections. A killed broker would close them itself.
    b1, b2 = brokers(2)
    jitter_ms = 500
    proxy = start_proxy({"p": pool(b1, b2, strategy="least-connections",
                                   on_down="shutdown-sessions", shutdown_jitter_ms=jitter_ms,
                                   health=FAST_HEALTH)})
    placed = {"b1": [], "b2": []}
    for i in range(6):
        c = conns.wire(proxy.port, version=4)
        reply, name = proxy.landing(lambda c=c, i=i: c.connect(f"frozen-{i}", keepalive=0))
        assert reply.reason() == 0
        placed[name].append(c)
    assert len(placed["b1"]) == 3

    b1.signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        # Every check of a frozen broker times out: detection is fall x timeout plus the waits.
        proxy.wait_state("b1", "down", timeout=2 * detection_ms(FAST_HEALTH) / 1000)
        down_at = time.monotonic()
        for c in placed["b1"]:
            wait_for(lambda c=c: is_closed(c), timeout=jitter_ms / 1000 + 0.3,
                     what="the proxy to close a session of the frozen broker")
        # All closed within the jitter window (and the polling above), counted from "down".
        assert time.monotonic() - down_at <= jitter_ms / 1000 + 0.3
        assert "closing the sessions of b1" in proxy.log()
        assert all(is_open(c) for c in placed["b2"]), "sessions on the healthy broker must stay"
        assert proxy.active()["b1"] == 0
        # Not before the checks could fail: the one in flight at the freeze and then fall - 1
        # more, each taking its whole timeout.
        assert down_at - stopped_at >= (FAST_HEALTH["fall"] - 1) * FAST_HEALTH["timeout_ms"] / 1000
    finally:
        b1.signal(signal.SIGCONT)
    proxy.wait_state("b1", "up", timeout=2 * detection_ms(FAST_HEALTH) / 1000 + 1)
    c = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: c.connect("after-thaw"))
    assert reply.reason() == 0 and name == "b1"


def dead_port():
    """A loopback port nothing listens on (bound, never listened, kept until the test ends)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def passive_proxy(start_proxy, *backends):
    """A proxy on one thread with a round-robin pool of `backends` and passive detection alone:
    three failures in a row eject for 20 s, longer than any test here."""
    return start_proxy({"p": pool(*backends, strategy="weighted-round-robin", retries=3,
                                  passive={"failures": 3, "eject_base_ms": 20000,
                                           "eject_max_ms": 30000})}, threads=1)


def connect_all(proxy, conns, n, prefix):
    """`n` clients through `proxy`, each served."""
    for i in range(n):
        c = conns.wire(proxy.port, version=4)
        assert c.connect(f"{prefix}-{i}").reason() == 0, f"client {i} refused"


def test_on_down_spreads_the_closes_over_the_jitter(brokers, start_proxy, conns):
    # Closed all at once, the clients would all reconnect in the same moment. The access log's
    # time stamps say when each session was closed: 20 closes spread at random over a second
    # span more than 400 ms but for a chance of about 1 in 3 million (20 x 0.4^19 - 19 x 0.4^20).
    # Each worker draws its delays from when it heard of the verdict, and a timer may be late:
    # the window has some slack.
    (b1,) = brokers(1)
    jitter_ms = 1000
    proxy = start_proxy({"p": pool(b1, on_down="shutdown-sessions", shutdown_jitter_ms=jitter_ms,
                                   health=FAST_HEALTH)},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "access_log": True}])
    clients = [conns.wire(proxy.port, version=4) for _ in range(20)]
    for i, c in enumerate(clients):
        assert c.connect(f"spread-{i}", keepalive=0).reason() == 0
    b1.signal(signal.SIGSTOP)
    try:
        closes = wait_for(lambda: (lambda t: t if len(t) == 20 else None)(
            [datetime.datetime.fromisoformat(line.split(" ", 1)[0])
             for line in proxy.log().splitlines() if line.endswith(" backend down")]),
            timeout=2 * detection_ms(FAST_HEALTH) / 1000 + jitter_ms / 1000 + 1,
            what="20 sessions closed for b1 down")
    finally:
        b1.signal(signal.SIGCONT)
    span = (max(closes) - min(closes)).total_seconds()
    assert 0.4 < span <= jitter_ms / 1000 + 0.25, span
    assert all(is_closed(c) for c in clients)


def test_refusing_backend_is_skipped_and_ejected_without_active_checks(brokers, start_proxy,
                                                                       conns):
    b1, b2 = brokers(2)
    holder, port = dead_port()
    with holder:
        # No [health] table: passive detection alone. Round-robin tries "dead" every third pick.
        proxy = passive_proxy(start_proxy, backend(port, name="dead"), b1, b2)
        connect_all(proxy, conns, 12, "skip")
        m = 'pool="p",backend="dead"'
        wait_for(lambda: proxy.metric(f"sb_proxy_backend_up{{{m}}}") == 0,
                 what="dead ejected")
        errors = proxy.metric(f"sb_proxy_backend_connect_errors_total{{{m}}}")
        assert errors >= 3
        assert proxy.metric(f"sb_proxy_backend_checks_total{{{m}}}") == 0
        assert proxy.state("dead") == "ejected"
        # Ejected: no more attempts on it, every client straight to a live broker.
        connect_all(proxy, conns, 6, "after")
        assert proxy.metric(f"sb_proxy_backend_connect_errors_total{{{m}}}") == errors
        assert proxy.active() == {"dead": 0, "b1": 9, "b2": 9}


def test_retries_is_the_number_of_further_backends_tried(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    holder, port = dead_port()
    with holder:
        # Round robin on one thread alternates dead and b1; passive ejection off, so that dead
        # stays in the rotation.
        settings = {"strategy": "weighted-round-robin", "passive": {"failures": 0}}
        proxy = start_proxy({"p": pool(backend(port, name="dead"), b1, retries=0, **settings)},
                            threads=1)
        reasons = [conns.wire(proxy.port, version=5).connect(f"once-{i}").reason()
                   for i in range(4)]
        assert sorted(reasons) == [0, 0, 0x88, 0x88], reasons  # no second try
        assert proxy.rejected("no_backend") == 2
        proxy.reload({"p": pool(backend(port, name="dead"), b1, retries=1, **settings)})
        for i in range(4):
            assert conns.wire(proxy.port, version=5).connect(f"twice-{i}").reason() == 0
        assert proxy.rejected("no_backend") == 2
        assert proxy.active() == {"dead": 0, "b1": 6}


def test_passive_ejection_takes_at_most_half_of_the_pool_out(brokers, start_proxy, conns):
    # Two of three backends refuse at once (a blip on their network, say). max_ejection_percent,
    # 50 by default, lets passive detection take one of them out, not both: a pool never empties
    # on passive signals alone, and retries carry the clients past the one left in.
    (b1,) = brokers(1)
    (h1, p1), (h2, p2) = dead_port(), dead_port()
    with h1, h2:
        proxy = passive_proxy(start_proxy, backend(p1, name="dead1"), backend(p2, name="dead2"),
                              b1)

        def held():
            return sum(proxy.backend_metric("sb_proxy_backend_ejections_held_total", n, "p")
                       for n in ("dead1", "dead2"))
        connect_all(proxy, conns, 15, "c")
        wait_for(lambda: held() >= 1, what="an ejection held back")
        states = {n: proxy.state(n) for n in ("dead1", "dead2")}
        assert sorted(states.values()) == ["ejected", "up"], states
        assert proxy.state("b1") == "up"
        assert "not ejected: max_ejection_percent 50 of the pool is out" in proxy.log()


def test_the_ejection_cap_counts_the_backups_apart(brokers, start_proxy, conns):
    # Both backends of the first tier refuse; two backups serve. Counted over the whole pool,
    # 50 % of four would let both refusing ones go, and every new client to the standbys on
    # passive signals alone. Per tier, one of the two stays in.
    b1, b2 = brokers(2)
    (h1, p1), (h2, p2) = dead_port(), dead_port()
    with h1, h2:
        proxy = passive_proxy(start_proxy, backend(p1, name="dead1"), backend(p2, name="dead2"),
                              dict(backend(b1), backup=True), dict(backend(b2), backup=True))
        connect_all(proxy, conns, 15, "c")
        wait_for(lambda: sum(proxy.backend_metric("sb_proxy_backend_ejections_held_total", n, "p")
                             for n in ("dead1", "dead2")) >= 1, what="an ejection held back")
        states = {n: proxy.state(n) for n in ("dead1", "dead2", "b1", "b2")}
        assert sorted(states.values()) == ["ejected", "up", "up", "up"], states


def test_an_ejection_ends_by_itself_and_the_backend_serves_again(brokers, start_proxy, conns,
                                                                  tmp_path, processes):
    # Passive detection alone (no [health]): nothing but the backoff's end brings b1 back.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(backend(b1, check=None), backend(b2, check=None),
                                   strategy="weighted-round-robin", retries=3,
                                   passive={"failures": 2, "eject_base_ms": 1000,
                                            "eject_max_ms": 1000})}, threads=1)
    b1.kill()
    i = 0
    while proxy.state("b1") != "ejected":
        assert i < 20, "b1 not ejected"
        before_connect = time.monotonic()  # before the failure that ejects b1: a lower bound
        assert conns.wire(proxy.port, version=4).connect(f"during-{i}").reason() == 0
        i += 1
    restart_broker(b1, tmp_path, processes)
    proxy.wait_state("b1", "up", timeout=3)
    assert time.monotonic() - before_connect >= 1.0, "the ejection ended before its backoff"
    assert proxy.backend_metric("sb_proxy_backend_checks_total", "b1", "p") == 0
    landed = {proxy.landing(lambda j=j: conns.wire(proxy.port, version=4).connect(f"after-{j}"))[1]
              for j in range(4)}
    assert landed == {"b1", "b2"}


def test_backend_that_accepts_and_drops_every_client_is_ejected(brokers, start_proxy, conns,
                                                                dropping_port):
    # "drop" accepts each connection and resets it on the CONNECT: each time one failure in a
    # row, although the TCP connect succeeded.
    b1, b2 = brokers(2)
    proxy = passive_proxy(start_proxy, backend(dropping_port, name="drop"), b1, b2)
    m = 'pool="p",backend="drop"'
    dropped = 0
    deadline = time.monotonic() + 10
    while proxy.state("drop") != "ejected":
        assert time.monotonic() < deadline, f"not ejected after {dropped} dropped clients"
        c = conns.wire(proxy.port, version=4)
        c.send(connect_packet(f"client-{dropped}", version=4))
        if c.recv() is None:  # else a CONNACK from b1 or b2
            dropped += 1
    assert dropped == 3
    assert proxy.metric(f"sb_proxy_backend_connect_errors_total{{{m}}}") == 3
    assert proxy.metric(f"sb_proxy_backend_up{{{m}}}") == 0
    # Ejected: every client now reaches a broker.
    connect_all(proxy, conns, 6, "after")
    assert proxy.active()["drop"] == 0


def clients_waiting_on_silent(proxy, conns, n):
    """Connects 2n clients, each sending its CONNECT; round robin sends every other one to the
    silent backend (first in the pool). Returns all of them once n wait there."""
    waiting = []
    for i in range(2 * n):
        c = conns.wire(proxy.port, version=4)
        c.send(connect_packet(f"waiting-{i}", version=4))
        waiting.append(c)
    wait_for(lambda: proxy.active().get("silent") == n, what=f"{n} clients waiting on silent")
    return waiting


def a_silent_and_a_real_backend(brokers, start_proxy, silent_port, **settings):
    (b1,) = brokers(1)
    return start_proxy({"p": pool(backend(silent_port, name="silent"), b1,
                                   strategy="weighted-round-robin", **settings,
                                   passive={"failures": 3, "eject_base_ms": 20000,
                                            "eject_max_ms": 30000})}, threads=1)


def test_a_broker_that_never_answers_is_ejected_when_its_clients_give_up(brokers, start_proxy,
                                                                         conns, silent_port):
    # "silent" completes TCP handshakes in the kernel and never answers a CONNECT, as a hung
    # broker does, and there are no active checks. Its clients give up after a while, as a
    # client's own CONNACK timeout does: each session over without an answer is a failure, and
    # three in a row eject it (before, a silent session that lasted counted as a success).
    proxy = a_silent_and_a_real_backend(brokers, start_proxy, silent_port)
    waiting = clients_waiting_on_silent(proxy, conns, 3)
    time.sleep(2.1)  # the clients' patience, past the 2 s in which leaving says nothing
    for c in waiting:
        c.close()
    proxy.wait_state("silent", "ejected")
    for i in range(4):
        assert conns.wire(proxy.port, version=4).connect(f"after-{i}").reason() == 0
    assert proxy.active()["silent"] == 0


@pytest.mark.parametrize("answer_timeout_ms", [None, 3000], ids=["default", "3s"])
def test_a_broker_that_never_answers_is_ejected_after_the_answer_timeout(
        brokers, start_proxy, conns, silent_port, answer_timeout_ms):
    # The same, with clients that wait on: answer_timeout_ms (default 10 s) without an answer to
    # the CONNECT is a failure.
    settings = {} if answer_timeout_ms is None else {"answer_timeout_ms": answer_timeout_ms}
    proxy = a_silent_and_a_real_backend(brokers, start_proxy, silent_port, **settings)
    clients_waiting_on_silent(proxy, conns, 3)
    started = time.monotonic()
    proxy.wait_state("silent", "ejected", timeout=15)
    # Not sooner than the timeout allows (the three connects began before `started`).
    assert time.monotonic() - started >= (answer_timeout_ms or 10000) / 1000 - 1.5


@pytest.mark.parametrize("version,reason", [(4, 3), (5, 0x88)], ids=["v311", "v5"])
def test_no_usable_backend_answers_server_unavailable(start_proxy, conns, version, reason):
    holder, port = dead_port()
    with holder:
        proxy = start_proxy({"p": pool(backend(port, name="dead"), retries=2)})
        for i in range(4):  # the first ones try and fail; later ones find the backend ejected
            c = conns.wire(proxy.port, version=version)
            ack = c.connect(f"nobody-{i}")
            assert ack.type == CONNACK and ack.reason() == reason, (i, ack)
            assert c.expect_closed() == []
        assert proxy.rejected("no_backend") == 4


def test_slow_start_ramps_a_recovered_broker(brokers, start_proxy, conns):
    # slow_start_s = 20: for the first 2 s after coming back, b2 has a tenth of its weight.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2, strategy="weighted-round-robin", slow_start_s=20,
                                   health=FAST_HEALTH)}, threads=1)
    b2.signal(signal.SIGSTOP)
    try:
        proxy.wait_state("b2", "down", timeout=2 * detection_ms(FAST_HEALTH) / 1000)
    finally:
        b2.signal(signal.SIGCONT)
    proxy.wait_state("b2", "up", timeout=2 * detection_ms(FAST_HEALTH) / 1000 + 1)
    landed = []
    for i in range(22):
        c = conns.wire(proxy.port, version=4)
        landed.append(proxy.landing(lambda c=c, i=i: c.connect(f"ramp-{i}"))[1])
    # Weights 10:1 for the ramp's first tenth: 2 of 22 (11 of 22 without slow start).
    assert landed.count("b2") <= 4, landed
    assert landed.count("b2") >= 1, "a ramping backend still gets its share"


def behind_hung(start_proxy, hung_port, b1, strategy, connect_timeout_ms):
    """A one-thread proxy over "hung", to which connecting hangs until the pool's connect timeout,
    and b1, with one retry and no passive ejection."""
    return start_proxy({"p": pool(backend(hung_port, name="hung"), b1, strategy=strategy,
                                  connect_timeout_ms=connect_timeout_ms, retries=1,
                                  passive={"failures": 100})}, threads=1)


def test_backend_connect_timeout_moves_on_to_the_next(brokers, start_proxy, conns, hung_port):
    # Connecting to "hung" hangs: only the pool's connect_timeout_ms ends the attempt.
    (b1,) = brokers(1)
    proxy = behind_hung(start_proxy, hung_port, b1, "weighted-round-robin", 200)
    times = []
    for i in range(4):
        c = conns.wire(proxy.port, version=4)
        start = time.monotonic()
        assert c.connect(f"patient-{i}").reason() == 0
        times.append(time.monotonic() - start)
    # Round-robin sends every other client to "hung" first: those waited the timeout, then b1.
    assert sorted(times)[2] >= 0.19 and max(times) < 1.0, times
    assert proxy.active() == {"hung": 0, "b1": 4}
    assert proxy.backend_metric("sb_proxy_backend_connect_errors_total", "hung", "p") == 2


def test_a_client_counts_as_its_backends_while_it_is_being_connected(brokers, start_proxy, conns,
                                                                      hung_port):
    # A connection counts for least-connections (and max_connections) from the moment its
    # backend is chosen, not once connected: while the proxy is still connecting a client to
    # "hung", the next one goes to b1, and the failed attempt gives the count back.
    (b1,) = brokers(1)
    proxy = behind_hung(start_proxy, hung_port, b1, "least-connections", 3000)
    clients = []
    for i in range(2):
        c = conns.wire(proxy.port, version=4)
        c.send(connect_packet(f"counted-{i}", version=4))
        clients.append(c)
    wait_for(lambda: proxy.active() == {"hung": 1, "b1": 1}, what="one client on each backend")
    for c in clients:
        assert c.expect(CONNACK, timeout=10).reason() == 0
    assert proxy.active() == {"hung": 0, "b1": 2}


def test_client_that_leaves_during_the_connect_is_not_sent_on(brokers, start_proxy, conns,
                                                              hung_port):
    # A client gives up while the proxy is still trying "hung": its CONNECT, with a will, must
    # not reach b1 once the proxy gets there (the broker would take over the session of the
    # client's next connection, and publish the will). One that sent more than its CONNECT
    # before it left (here a DISCONNECT, without waiting for the CONNACK) is still served.
    (b1,) = brokers(1)
    proxy = behind_hung(start_proxy, hung_port, b1, "weighted-round-robin", 300)
    watcher = conns.wire(b1.port, version=4)
    assert watcher.connect("watcher").reason() == 0
    watcher.subscribe(1, ("wills/#", 0))
    quitter = conns.wire(proxy.port, version=4)
    quitter.send(connect_packet("quitter", version=4, will={"topic": "wills/quitter",
                                                           "payload": "gone"}))
    quitter.sock.close()  # before the 300 ms the proxy spends on "hung"
    wait_for(lambda: proxy.rejected("client_left") == 1, what="the left client counted")
    assert proxy.backend_metric("sb_proxy_backend_connections_total", "b1", "p") == 0
    # The next turn is b1's; the one after, "hung" first again, for a client that said all it
    # had to say before it left.
    assert conns.wire(proxy.port, version=4).connect("filler").reason() == 0
    brief = conns.wire(proxy.port, version=4)
    brief.send(connect_packet("brief", version=4, will={"topic": "wills/brief",
                                                       "payload": "unused"})
               + packet(DISCONNECT, 0, b""))
    brief.sock.close()
    wait_for(lambda: proxy.backend_metric("sb_proxy_backend_connections_total", "b1", "p") == 2,
             what="the brief client served")
    assert proxy.rejected("client_left") == 1
    assert proxy.backend_metric("sb_proxy_backend_connect_errors_total", "hung", "p") == 2
    # The broker heard from neither as a client that vanished: no will.
    watcher.expect_silence(0.5)


def test_proxy_out_of_descriptors_refuses_without_blaming_the_backends(brokers, start_proxy,
                                                                       conns):
    # The proxy itself cannot open a socket (EMFILE): the client is refused, counted as the
    # proxy's shortage, and the brokers, which did nothing wrong, stay up. Passive detection
    # would eject a backend at its first failure here.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(backend(b1, check=None), backend(b2, check=None), retries=1,
                                   passive={"failures": 1, "eject_base_ms": 30000})},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p",
                          "connect_timeout_ms": 30000}], threads=1)
    pid = proxy.proc.pid
    # Once the admin connection of the start-up check is gone, the proxy holds no descriptor that
    # comes and goes: a limit one above the lowest free number leaves it exactly one, which the
    # next accepted client takes.
    wait_for(lambda: not any(local == proxy.admin_port and state != "0A" and held
                             for local, _, state, held in tcp_sockets()),
             what="the admin connection closed")
    in_use = {int(f) for f in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = min(set(range(len(in_use) + 1)) - in_use)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free + 1, hard))
    c = conns.wire(proxy.port, version=4)
    assert c.connect("short-of-descriptors").reason() == 3  # server unavailable
    assert c.expect_closed() == []
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert proxy.rejected("local_resources") == 1
    assert proxy.rejected("no_backend") == 0
    for name in ("b1", "b2"):
        assert proxy.backend_metric("sb_proxy_backend_connect_errors_total", name, "p") == 0
        assert proxy.state(name) == "up"
    assert conns.wire(proxy.port, version=4).connect("after-the-shortage").reason() == 0


def test_proxy_out_of_descriptors_does_not_fail_its_checks(brokers, start_proxy):
    # A check the proxy cannot even start (no descriptor for its socket) says nothing about the
    # backend: no failure, no verdict. It is a warning once, not at every interval.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(b1, check=None), health={**FAST_HEALTH, "type": "tcp"})},
                        threads=1, log_level="debug")
    proxy.wait_state("b1", "up")
    m = 'pool="p",backend="b1"'
    checks = proxy.metric(f"sb_proxy_backend_checks_total{{{m}}}")
    pid = proxy.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, hard))  # no new descriptor at all
    # More checks that could not start than the fall count (2) that would take b1 down.
    wait_for(lambda: proxy.log().count("could not check b1") > 2, what="three checks not started")
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert proxy.state("b1") == "up"
    assert proxy.metric(f"sb_proxy_backend_checks_failed_total{{{m}}}") == 0
    wait_for(lambda: proxy.metric(f"sb_proxy_backend_checks_total{{{m}}}") > checks,
             what="checks again")
    wait_for(lambda: "checks of b1 can be made again" in proxy.log(), what="the end logged")
    assert proxy.log().count("until a check can be made") == 1  # the warning; the rest at debug


def cpu_seconds(pid):
    """User and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_admin_connection_while_out_of_descriptors_waits_without_spinning(brokers, start_proxy):
    # An admin connection the proxy cannot accept (EMFILE) stays in the backlog: the next accept
    # would fail at once, so the admin server backs off rather than retry in a loop on the
    # control thread. Once descriptors are back, the connection is served.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(b1, check=None))}, threads=1)
    pid = proxy.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, hard))  # no new descriptor at all
    try:
        with socket.create_connection(("127.0.0.1", proxy.admin_port)) as pending:
            before = cpu_seconds(pid)
            time.sleep(1.0)  # the window in which a spinning accept loop would burn a core
            spent = cpu_seconds(pid) - before
            assert spent < 0.3, f"{spent:.2f} s of CPU in 1 s while out of descriptors"
            assert "admin: accept: Too many open files" in proxy.log()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            pending.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            pending.settimeout(5)
            assert pending.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def test_mqtt_checks_pass_a_broker_with_a_low_max_keepalive(start_broker, start_proxy):
    """A broker refuses a 3.1.1 client whose keep alive is over its maximum (return code 2, as
    mosquitto does): the checks' CONNECT asked 30 s, and a healthy broker with max_keepalive_s 20
    was down."""
    b = start_broker(config="[limits]\nmax_keepalive_s = 20\n", name="capped")
    health = {**FAST_HEALTH, "type": "mqtt"}
    proxy = start_proxy({"p": pool(backend(b.port, name="capped"), health=health)})
    wait_for(lambda: proxy.backend_metric("sb_proxy_backend_checks_total", "capped", "p") >= 3,
             what="checks of the broker")
    assert proxy.backend_metric("sb_proxy_backend_checks_failed_total", "capped", "p") == 0
    assert proxy.state("capped") == "up"
