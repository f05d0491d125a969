"""Stopping a proxy of a tier ([proxy] stop_grace_ms and stop_spread_ms): /healthz turns 503 at
the signal while the listeners still serve for the grace; then they close, and the clients'
connections are closed spread over the window, so that they reconnect to the other proxies as a
stream, not all in the same millisecond; a second signal stops at once."""
import selectors
import signal
import socket
import time

from conftest import http_get, wait_for
from proxy_fixtures import backend, brokers, conns, pool, start_proxy  # noqa: F401

GRACE_S = 1.5
SPREAD_S = 2.0
CLIENTS = 20


def close_times(wires, deadline_s):
    """{index: seconds on the monotonic clock when the proxy closed that client's connection};
    waits for all of them until `deadline_s` (monotonic)."""
    sel = selectors.DefaultSelector()
    for i, w in enumerate(wires):
        w.sock.setblocking(False)
        sel.register(w.sock, selectors.EVENT_READ, i)
    closed = {}
    while len(closed) < len(wires) and time.monotonic() < deadline_s:
        for key, _ in sel.select(timeout=max(0.0, deadline_s - time.monotonic())):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                closed[key.data] = time.monotonic()
                sel.unregister(key.fileobj)
    sel.close()
    return closed


def connected(conns, port, n, prefix):
    """`n` MQTT clients through the proxy's `port`, each past its CONNACK."""
    clients = []
    for i in range(n):
        c = conns.wire(port, version=4)
        assert c.connect(f"{prefix}-{i}").body == b"\x00\x00"
        clients.append(c)
    return clients


def assert_exits_at_once(proxy, client, what):
    wait_for(lambda: not proxy.alive(), timeout=3, what=what)
    assert proxy.proc.returncode == 0
    assert client.expect_closed() == []


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_a_stop_signal_drains_the_proxy_over_grace_and_spread(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(b1))},
                        settings={"stop_grace_ms": int(GRACE_S * 1000),
                                  "stop_spread_ms": int(SPREAD_S * 1000)})
    clients = connected(conns, proxy.port, CLIENTS, "c")
    wait_for(lambda: proxy.active() == {b1.name: CLIENTS}, what="every client tunnelled")

    signalled = time.monotonic()
    proxy.signal(signal.SIGTERM)
    wait_for(lambda: http_get(proxy.url("/healthz"))[0] == 503, timeout=1,
             what="/healthz to answer 503 at the signal")
    assert proxy.metric("sb_proxy_up") == 0
    # Within the grace a new client is still served: a load balancer may not have noticed yet.
    clients += connected(conns, proxy.port, 1, "late")
    assert time.monotonic() - signalled < GRACE_S, "too slow to test the grace; raise GRACE_S"

    closed = close_times(clients, signalled + GRACE_S + SPREAD_S + 5)
    assert len(closed) == len(clients), f"{len(clients) - len(closed)} connections left open"
    first, last = min(closed.values()), max(closed.values())
    assert first - signalled >= GRACE_S, "a connection closed within the grace"
    # Spread over the window: 21 closes at random moments within 2 s all falling into one half
    # second has a chance below 1e-11.
    assert last - first >= SPREAD_S / 4, f"the closes were not spread: {last - first:.3f} s"
    assert refuses_connections(proxy.port), "the listener is still open after the grace"
    wait_for(lambda: not proxy.alive(), timeout=2, what="the proxy to exit after its last client")
    assert proxy.proc.returncode == 0
    assert "connections within 2000 ms" in proxy.log()


def test_a_second_stop_signal_stops_at_once(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(b1))},
                        settings={"stop_grace_ms": 60_000, "stop_spread_ms": 60_000})
    (c,) = connected(conns, proxy.port, 1, "c")
    proxy.signal(signal.SIGTERM)
    wait_for(lambda: http_get(proxy.url("/healthz"))[0] == 503, timeout=1,
             what="/healthz to answer 503 at the signal")
    assert proxy.alive()
    proxy.signal(signal.SIGINT)
    assert_exits_at_once(proxy, c, "the proxy to exit at the second signal")


def test_without_a_grace_or_spread_a_stop_signal_stops_at_once(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(backend(b1))})
    (c,) = connected(conns, proxy.port, 1, "c")
    proxy.signal(signal.SIGTERM)
    assert_exits_at_once(proxy, c, "the proxy to exit")


def test_connections_of_a_listener_removed_by_a_reload_are_spread_too(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    listeners = [{"name": "mqtt", "protocol": "mqtt", "pool": "p"},
                 {"name": "old", "protocol": "mqtt", "pool": "p"}]
    proxy = start_proxy({"p": pool(backend(b1))}, listeners,
                        settings={"stop_grace_ms": 0, "stop_spread_ms": int(SPREAD_S * 1000)})
    clients = connected(conns, proxy.ports["old"], CLIENTS, "old")
    proxy.reload(listeners=listeners[:1])  # "old" goes; its clients stay
    assert proxy.active() == {b1.name: CLIENTS}

    signalled = time.monotonic()
    proxy.signal(signal.SIGTERM)
    closed = close_times(clients, signalled + SPREAD_S + 5)
    assert len(closed) == CLIENTS
    first, last = min(closed.values()), max(closed.values())
    assert last - first >= SPREAD_S / 4, f"the closes were not spread: {last - first:.3f} s"
    wait_for(lambda: not proxy.alive(), timeout=2, what="the proxy to exit after its last client")
