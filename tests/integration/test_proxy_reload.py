"""SIGHUP: the proxy re-reads its file and applies it all or nothing. Backends that stay keep their
connections, counts, health and operator changes, and the clients of those that go are closed; a
file with an error, or one that cannot be applied, is refused and the running configuration
stays."""
import os
import signal
import socket
import threading
import time

from conftest import free_port, mapped_resolver, slow_resolver, wait_for
from mqtt_wire import CONNACK, connect_packet
from proxy_fixtures import (FAST_HEALTH, backend, brokers, conns, hung_port,  # noqa: F401
                            is_closed, is_open, pool, start_proxy, tcp_sockets)


def place(proxy, conns, n, prefix):
    """Connects `n` clients; returns {backend name: [clients]}."""
    placed = {}
    for i in range(n):
        c = conns.wire(proxy.port, version=4)
        reply, name = proxy.landing(lambda c=c, i=i: c.connect(f"{prefix}-{i}"))
        assert reply.reason() == 0
        placed.setdefault(name, []).append(c)
    return placed


def round_trip(c, topic):
    """Subscribe, publish to itself, receive: the connection still carries MQTT both ways."""
    assert c.subscribe(1, (topic, 0)).suback_codes() == [0]
    c.publish(topic, b"still here")
    assert c.expect_message().payload == b"still here"
    assert c.unsubscribe(2, topic).type == 11


def test_reload_adds_and_removes_backends_keeping_connections(brokers, start_proxy, conns):
    b1, b2, b3 = brokers(3)
    settings = {"strategy": "least-connections", "shutdown_jitter_ms": 300}
    proxy = start_proxy({"p": pool(b1, b2, **settings)})
    placed = place(proxy, conns, 4, "before")
    assert {n: len(c) for n, c in placed.items()} == {"b1": 2, "b2": 2}

    proxy.reload({"p": pool(b1, b3, **settings)})
    assert set(proxy.backends()) == {"b1", "b3"}
    # The connections to b1, which stays, were not dropped: both directions still work.
    for i, c in enumerate(placed["b1"]):
        round_trip(c, f"kept/{i}")
    assert proxy.active()["b1"] == 2
    # Those to b2, which went, were closed within the pool's shutdown jitter, for their clients
    # to come back to a backend the pool has.
    for c in placed["b2"]:
        assert c.expect_closed(timeout=5) == []
    b2.wait_connections(0)

    # New clients: b3 (empty) takes them until it is level with b1, and none ever reaches b2.
    b2_before = b2.metric("sb_broker_connections_accepted_total")
    fresh = place(proxy, conns, 6, "after")
    assert {n: len(c) for n, c in fresh.items()} == {"b3": 4, "b1": 2}
    assert b2.metric("sb_broker_connections_accepted_total") == b2_before
    assert b3.metric("sb_broker_connections") == 4


def test_reload_changes_the_strategy_keeping_connections(brokers, start_proxy, conns):
    b1, b2, b3 = brokers(3)
    proxy = start_proxy({"p": pool(b1, b2, b3, strategy="weighted-round-robin")}, threads=1)
    placed = place(proxy, conns, 6, "before")
    assert {n: len(c) for n, c in placed.items()} == {"b1": 2, "b2": 2, "b3": 2}

    # Every client here comes from 127.0.0.1: hashing the source address sends all to one.
    proxy.reload({"p": pool(b1, b2, b3, strategy="source-hash", hash_key="source-ip")})
    assert proxy.pools()["pools"][0]["strategy"] == "source-hash"
    for name, clients in placed.items():
        for i, c in enumerate(clients):
            round_trip(c, f"kept/{name}/{i}")
    fresh = place(proxy, conns, 6, "after")
    assert [len(c) for c in fresh.values()] == [6], fresh.keys()
    assert sum(proxy.active().values()) == 12


def test_reload_makes_a_backup_a_backend_and_back_keeping_connections(brokers, start_proxy,
                                                                     conns):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, dict(backend(b2), backup=True),
                                   strategy="weighted-round-robin")}, threads=1)
    placed = place(proxy, conns, 4, "before")
    assert {n: len(c) for n, c in placed.items()} == {"b1": 4}

    proxy.reload({"p": pool(b1, b2, strategy="weighted-round-robin")})
    fresh = place(proxy, conns, 4, "promoted")
    assert {n: len(c) for n, c in fresh.items()} == {"b1": 2, "b2": 2}

    proxy.reload({"p": pool(dict(backend(b1), backup=True), b2, strategy="weighted-round-robin")})
    assert {n: b["backup"] for n, b in proxy.backends().items()} == {"b1": True, "b2": False}
    fresh = place(proxy, conns, 2, "demoted")
    assert {n: len(c) for n, c in fresh.items()} == {"b2": 2}
    for i, c in enumerate(placed["b1"]):  # the first clients of b1, a backup now, stay
        round_trip(c, f"kept/{i}")
    assert proxy.active() == {"b1": 6, "b2": 4}


def test_a_new_check_address_moves_the_checks_and_keeps_the_clients(brokers, start_proxy, conns):
    # Only b2's check address changes, to a port where nothing listens: b2 stays the same backend,
    # its client stays connected (a dropped backend's would be closed within the 200 ms jitter),
    # and its checks go to the new address, so it goes down (on_down "none": the client stays).
    b1, b2 = brokers(2)
    settings = {"health": dict(FAST_HEALTH), "shutdown_jitter_ms": 200}
    proxy = start_proxy({"p": pool(b1, b2, **settings)})
    placed = place(proxy, conns, 2, "kept")
    assert set(placed) == {"b1", "b2"}
    dead = {**backend(b2), "check_address": f"127.0.0.1:{free_port()}"}
    proxy.reload({"p": pool(b1, dead, **settings)})
    proxy.wait_state("b2", "down")
    for name, (c,) in placed.items():
        round_trip(c, f"kept/{name}")
    assert proxy.active() == {"b1": 1, "b2": 1}
    assert b2.metric("sb_broker_connections") == 1


def test_reload_opens_and_closes_listeners(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    pools = {"p": pool(b1)}
    proxy = start_proxy(pools)
    held = conns.wire(proxy.port, version=4)
    assert held.connect("held").reason() == 0

    main = {"name": "mqtt", "protocol": "mqtt", "pool": "p"}
    proxy.reload(pools, [main, {"name": "second", "protocol": "mqtt", "pool": "p"}])
    second = conns.wire(proxy.ports["second"], version=4)
    assert second.connect("via-second").reason() == 0

    # The removed listener stops accepting (every I/O thread has closed its acceptor when the
    # reload is logged); its connection and the first listener's stay.
    proxy.reload(pools, [main])
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", proxy.ports["second"])) != 0
    assert is_open(held) and is_open(second)
    c = conns.wire(proxy.port, version=4)
    assert c.connect("still-accepting").reason() == 0


def test_broken_file_on_sighup_is_refused_and_the_old_one_stays(brokers, start_proxy, conns):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, strategy="least-connections")})
    held = conns.wire(proxy.port, version=4)
    assert held.connect("held").reason() == 0

    good_text = proxy.config_path.read_text()
    proxy.reload(text=good_text.replace('strategy = "least-connections"',
                                        'strategy = "least-connections"\nstickyy = true'),
                 expect_ok=False)
    assert "pool.p.stickyy: unknown key" in proxy.log()
    assert set(proxy.backends()) == {"b1"}
    assert is_open(held)
    c = conns.wire(proxy.port, version=4)
    assert c.connect("after-refusal").reason() == 0


def test_reload_is_all_or_nothing(brokers, start_proxy, conns):
    # A valid file that cannot be applied (a new listener on a port in use) changes nothing, not
    # even the pool it also changes, the weight of a backend that stays, or the log level.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1)})
    proxy.log_level = "debug"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy.reload({"p": pool(backend(b1, weight=9), b2)},
                     [{"name": "mqtt", "protocol": "mqtt", "pool": "p"},
                      {"name": "busy", "protocol": "mqtt", "pool": "p",
                       "bind": f"127.0.0.1:{taken.getsockname()[1]}"}], expect_ok=False)
    assert "listener busy: cannot listen" in proxy.log()
    assert set(proxy.backends()) == {"b1"}
    assert proxy.backends()["b1"]["weight"] == 1
    placed = place(proxy, conns, 2, "old-config")
    assert list(placed) == ["b1"]
    conns.socket(proxy.port).sendall(b"GET / HTTP/1.1\r\n\r\n")
    wait_for(lambda: proxy.rejected("malformed_first_packet") == 1, what="a refusal")
    assert "log level debug" not in proxy.log()
    assert "refusing a first packet" not in proxy.log()  # logged at debug only


def test_reload_keeps_operator_changes_and_applies_file_weights(brokers, start_proxy, conns):
    b1, b2, b3 = brokers(3)
    proxy = start_proxy({"p": pool(b1, b2)})
    assert proxy.post("/api/backends/b1/drain")[0] == 200
    assert proxy.post("/api/backends/b2/weight", "5")[0] == 200

    proxy.reload({"p": pool(b1, b2, b3)})
    got = proxy.backends()
    assert got["b1"]["state"] == "draining"
    assert got["b2"]["weight"] == 5, "the file's weight of b2 did not change: the operator's stays"

    # A weight changed in the file wins over the operator's, once: a later reload that leaves it
    # as it is keeps what the operator set since.
    proxy.reload({"p": pool(b1, backend(b2, weight=2), b3)})
    # and for good: the tier's record of the operator's weight goes with it, or its next sync
    # (every 100 ms) would bring 5 back.
    window = time.monotonic() + 0.5  # a deliberate window of several syncs
    while time.monotonic() < window:
        assert proxy.backends()["b2"]["weight"] == 2
    assert proxy.post("/api/backends/b2/weight", "7")[0] == 200
    proxy.reload({"p": pool(b1, backend(b2, weight=2), b3, retries=2)})
    assert proxy.backends()["b2"]["weight"] == 7


def test_reload_applies_new_health_checks_to_kept_backends(brokers, start_proxy, conns):
    # Passive detection only at first; a reload adds active checks, which must start for the
    # backends that stay, and then detect a dead one.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)})
    proxy.reload({"p": pool(b1, b2, health=FAST_HEALTH)})
    wait_for(lambda: proxy.backend_metric("sb_proxy_backend_checks_total", "b1", "p") >= 2,
             what="active checks of b1 after the reload")
    b2.kill()
    proxy.wait_state("b2", "down", timeout=3)

    # Other check settings: the backends' verdicts carry over; b2 does not come back as new.
    proxy.reload({"p": pool(b1, b2, health=dict(FAST_HEALTH, rise=3, timeout_ms=100))})
    assert "backend b2 available after the reload" not in proxy.log()
    assert proxy.state("b2") == "down" and proxy.state("b1") == "up"
    assert list(place(proxy, conns, 3, "after-reload")) == ["b1"]


def test_reload_during_a_connect_attempt_retries_on_the_reloaded_pool(brokers, start_proxy,
                                                                     conns, hung_port):
    # The first pick is "hung" (round robin starts at the first backend); while the proxy waits
    # for it, a reload (of the same file: every reload builds new pools) happens. The retry must
    # still find b1, as it would have without the reload.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(hung_port, name="hung"), b1,
                                   strategy="weighted-round-robin", connect_timeout_ms=1500,
                                   retries=1, passive={"failures": 100})}, threads=1)
    def connecting_to_hung():  # the fixture's own fillers are among them
        return sum(remote == hung_port and state == "02" for _, remote, state, _ in tcp_sockets())

    fillers = connecting_to_hung()
    c = conns.wire(proxy.port, version=4)
    c.send(connect_packet("through-a-reload", version=4))
    wait_for(lambda: connecting_to_hung() > fillers, what="the proxy to be connecting to hung")
    proxy.reload()
    assert c.expect(CONNACK).reason() == 0
    assert proxy.active() == {"hung": 0, "b1": 1}
    assert proxy.backend_metric("sb_proxy_backend_connect_errors_total", "hung", "p") == 1


def test_a_client_whose_pool_a_reload_removed_is_told_so(brokers, start_proxy, conns):
    # A client connects to the listener of pool "p", and sends its CONNECT only after a reload
    # has moved the listener to pool "q": the setup it began on "p" cannot go on. It gets CONNACK
    # "server unavailable" (counted as no_backend), to reconnect, rather than a silent close.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1)})
    c = conns.wire(proxy.port, version=4)
    wait_for(lambda: proxy.metric('sb_proxy_listener_active_connections{listener="mqtt"}') == 1,
             what="the proxy to hold the connection")
    proxy.reload({"q": pool(b2)}, [{"name": "mqtt", "protocol": "mqtt", "pool": "q"}])
    c.send(connect_packet("late", version=4))
    assert c.expect(CONNACK).reason() == 3  # 3.1.1: server unavailable
    assert proxy.rejected("no_backend") == 1
    again = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: again.connect("late"))
    assert reply.reason() == 0 and name == "b2"


def test_reload_applies_the_log_level_and_names_what_waits_for_a_restart(brokers, start_proxy,
                                                                          conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)})
    refusal = "refusing a first packet"
    s = conns.socket(proxy.port)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    wait_for(lambda: proxy.rejected("malformed_first_packet") == 1, what="the first refusal")
    assert refusal not in proxy.log()  # a debug line, below "info"
    proxy.log_level = "debug"
    proxy.instance = "renamed"
    proxy.reload()
    assert "apply at the next restart" in proxy.log()
    s = conns.socket(proxy.port)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    wait_for(lambda: refusal in proxy.log(), what="the refusal logged at debug")


def test_a_slow_resolver_holds_up_the_reload_not_the_connections(brokers, start_proxy, conns):
    # A reload resolves host names on a thread of its own. While the system resolver takes 4 s
    # over the new backend's name, the one I/O thread (which also runs the reload) goes on
    # relaying for its clients and accepting new ones; then the reload applies.
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1)}, threads=1, env=slow_resolver(4000))
    c = conns.wire(proxy.port, version=4)
    assert c.connect("before").reason() == 0
    proxy.write_config({"p": pool(b1, dict(backend(b2), address=f"b2.slow.test:{b2.port}"))})
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: "reloading " in proxy.log(), what="the reload begun")
    round_trip(c, "during")
    fresh = conns.wire(proxy.port, version=4)
    assert fresh.connect("during").reason() == 0
    assert "] reloaded " not in proxy.log()  # all that happened while the name was resolved
    wait_for(lambda: "] reloaded " in proxy.log(), timeout=10, what="the reload, once resolved")
    assert set(proxy.backends()) == {"b1", "b2"}


def test_a_sighup_while_starting_reloads_once_started(brokers, start_proxy, conns, tmp_path):
    # Resolving a backend's name at start takes 2 s here. A SIGHUP meanwhile (a service manager's
    # reload, a log rotation) used to find no handler and kill the process; now it waits for the
    # proxy to run, and reloads then.
    (b1,) = brokers(1)
    mark = tmp_path / "resolving"

    def hang_up_while_resolving():
        wait_for(lambda: mark.exists() and mark.read_text().strip(), what="the slow lookup")
        os.kill(int(mark.read_text()), signal.SIGHUP)

    sender = threading.Thread(target=hang_up_while_resolving)
    sender.start()
    proxy = start_proxy({"p": pool(dict(backend(b1), address=f"b1.slow.test:{b1.port}"))},
                        env=slow_resolver(2000, mark=mark))
    sender.join()
    wait_for(lambda: "] reloaded " in proxy.log(), timeout=10, what="the reload after the start")
    assert proxy.alive()
    assert conns.wire(proxy.port, version=4).connect("after").reason() == 0


def test_dns_refresh_follows_a_backend_to_its_new_address(start_proxy, conns, tmp_path):
    # svc.map.test resolves to what the file says (tests/integration/test_resolver.cc): first
    # 127.0.0.1, then 127.0.0.2, where a second service listens on the same port. Within a
    # refresh, new clients reach the new address and the old address's clients are closed.
    # One thread: a new client cannot reach a worker that has not heard of the move yet.
    port = free_port()
    hosts = tmp_path / "hosts"

    def resolve_to(*addresses):  # at once: a lookup never finds the file half written
        (tmp_path / "hosts.new").write_text("".join(f"{a}\n" for a in addresses))
        os.replace(tmp_path / "hosts.new", hosts)

    resolve_to("127.0.0.1")
    lookups = tmp_path / "lookups"
    lookups.write_text("")

    def refreshes(n):
        looked_up = len(lookups.read_text().splitlines())
        wait_for(lambda: len(lookups.read_text().splitlines()) >= looked_up + n,
                 what=f"{n} refreshes")

    with socket.create_server(("127.0.0.1", port)) as old, \
            socket.create_server(("127.0.0.2", port)) as new:
        old.settimeout(5)
        new.settimeout(5)
        svc = {"name": "svc", "address": f"svc.map.test:{port}"}
        proxy = start_proxy({"svc": pool(svc, shutdown_jitter_ms=100)},
                            [{"name": "tcp", "protocol": "tcp", "pool": "svc"}], threads=1,
                            settings={"dns_refresh_s": 1}, env=mapped_resolver(hosts, log=lookups))
        before = conns.socket(proxy.port)
        accepted, _ = old.accept()
        with accepted:
            # Both addresses, the new one first, as round-robin DNS may order them: the backend
            # stays where it is, and so does its client.
            resolve_to("127.0.0.2", "127.0.0.1")
            refreshes(2)
            assert "now at" not in proxy.log() and not is_closed(before)
            # The name does not resolve for a while (a pod restarting): said once, no change.
            resolve_to()
            refreshes(2)
            assert proxy.log().count("its address in force stays") == 1
            assert not is_closed(before)
            resolve_to("127.0.0.2")
            wait_for(lambda: "backend svc now at 127.0.0.2" in proxy.log(), timeout=5,
                     what="the refresh to find the new address")
            assert "backend svc resolves again" in proxy.log()
            wait_for(lambda: is_closed(before), timeout=3, what="the old address's client closed")
            after = conns.socket(proxy.port)
            moved, _ = new.accept()
            with moved:
                after.sendall(b"hello")
                assert moved.recv(5) == b"hello"
        assert proxy.backends("svc")["svc"]["address"] == f"svc.map.test:{port}"
