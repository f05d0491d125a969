"""The admin API's operator actions: drain and enable a backend, set its weight, close its
sessions; and the answers to requests it cannot serve."""
import http.client
import socket

import pytest

from conftest import free_port, http_get, wait_for
from mqtt_wire import PUBLISH, connect_packet, packet, string
from proxy_fixtures import (FAST_HEALTH, backend, brokers, conns, is_open, pool,  # noqa: F401
                            start_proxy)


def connect(proxy, conns, client_id):
    c = conns.wire(proxy.port, version=4)
    reply, name = proxy.landing(lambda: c.connect(client_id))
    assert reply.reason() == 0
    return c, name


def test_drain_keeps_connections_and_takes_no_new_ones_until_enabled(brokers, start_proxy,
                                                                     conns):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2, strategy="least-connections")})
    placed = {}
    for i in range(4):
        c, name = connect(proxy, conns, f"first-{i}")
        placed.setdefault(name, []).append(c)
    assert len(placed["b1"]) == 2

    status, body = proxy.post("/api/backends/b1/drain")
    assert status == 200, body
    assert body["backends"][0]["name"] == "b1" and body["backends"][0]["draining"] is True
    assert proxy.state("b1") == "draining"
    assert proxy.backend_metric("sb_proxy_backend_draining", "b1", "p") == 1

    # b1 is now the emptier one, yet no new client goes there; its own clients stay.
    for i in range(6):
        assert connect(proxy, conns, f"drained-{i}")[1] == "b2"
    assert all(is_open(c) for c in placed["b1"])
    assert proxy.active() == {"b1": 2, "b2": 8}

    status, body = proxy.post("/api/backends/b1/enable")
    assert status == 200 and body["backends"][0]["draining"] is False
    assert proxy.state("b1") == "up"
    for i in range(3):  # least connections: b1 has 2 against 8, it takes the next ones
        assert connect(proxy, conns, f"enabled-{i}")[1] == "b1"


def test_shutdown_sessions_moves_a_drained_backends_clients(brokers, start_proxy, conns):
    # A broker's maintenance: drained, its clients are closed, spread over the jitter, and
    # reconnect to the other; the other's clients stay.
    b1, b2 = brokers(2)
    jitter_ms = 300
    proxy = start_proxy({"p": pool(b1, b2, strategy="weighted-round-robin",
                                   shutdown_jitter_ms=jitter_ms)},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "access_log": True}])
    home = {}
    for i in range(4):
        c, home[f"op-{i}"] = proxy.landing(lambda i=i: conns.reconnecting(proxy.port, f"op-{i}"))
    clients = [c for c in conns.open]
    assert sorted(home.values()) == ["b1", "b1", "b2", "b2"]
    assert proxy.post("/api/backends/b1/drain")[0] == 200
    status, body = proxy.post("/api/backends/b1/shutdown-sessions")
    assert status == 200 and body["backends"][0]["name"] == "b1", body
    for c in clients:
        moved = home[c.client_id] == "b1"
        wait_for(lambda c=c, m=moved: c.connections == (2 if m else 1)
                 and c.round_trip("after the shutdown"), timeout=jitter_ms / 1000 + 2,
                 what=f"{c.client_id} serving")
    assert proxy.active() == {"b1": 0, "b2": 4}
    assert [c.connections for c in clients] == [2 if home[c.client_id] == "b1" else 1
                                                 for c in clients]
    wait_for(lambda: sum(line.endswith(" closed by operator")
                         for line in proxy.log().splitlines()) == 2,
             what="an access log line for each")


@pytest.mark.parametrize("body", ["3", '{"weight": 3}', "3\n", '{"weight":3}'])
def test_weight_is_set_from_either_body_and_used(brokers, start_proxy, conns, body):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2, strategy="weighted-round-robin")}, threads=1)
    status, answer = proxy.post("/api/backends/b1/weight", body)
    assert status == 200, answer
    assert answer["backends"][0]["weight"] == 3
    assert proxy.backends()["b1"]["weight"] == 3
    assert proxy.backend_metric("sb_proxy_backend_weight", "b1", "p") == 3
    # The strategy sees it: eight new clients split 3:1.
    landed = [connect(proxy, conns, f"w-{i}")[1] for i in range(8)]
    assert landed.count("b1") == 6 and landed.count("b2") == 2, landed


def test_weight_zero_takes_no_new_connections(brokers, start_proxy, conns):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)})
    assert proxy.post("/api/backends/b1/weight", "0")[0] == 200
    assert all(connect(proxy, conns, f"z-{i}")[1] == "b2" for i in range(4))


@pytest.mark.parametrize("body", ["", "three", "-1", "1001", "3.5", '{"weight": "3"}',
                                  '{"weight": -1}', '{"weight": 1001}', '{"w": 3}', "[3]",
                                  '{"weight": 3', "3 4"])
def test_bad_weight_body_is_400_and_changes_nothing(brokers, start_proxy, body):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)})
    status, answer = proxy.post("/api/backends/b1/weight", body)
    assert status == 400, (body, answer)
    assert "expected a weight" in answer["error"]
    assert proxy.backends()["b1"]["weight"] == 1


def test_unknown_backend_action_and_method(brokers, start_proxy):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)})
    for action, body in (("drain", ""), ("enable", ""), ("weight", "3"),
                         ("shutdown-sessions", "")):
        status, answer = proxy.post(f"/api/backends/nobody/{action}", body)
        assert status == 404 and 'no backend named "nobody"' in answer["error"], answer
    assert proxy.post("/api/backends/b1/explode")[0] == 404
    assert proxy.post("/api/backends/b1")[0] == 404
    # A 405 names the method that would do (RFC 9110 §15.5.6).
    for method, path, allow in (("GET", "/api/backends/b1/drain", "POST"),
                                ("POST", "/healthz", "GET"), ("POST", "/metrics", "GET"),
                                ("POST", "/api/pools", "GET")):
        c = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=5)
        c.request(method, path)
        r = c.getresponse()
        assert (r.status, r.getheader("Allow")) == (405, allow), (method, path)
        c.close()
    assert proxy.post("/nothing-here")[0] == 404
    assert http_get(proxy.url("/nothing-here"))[0] == 404
    assert proxy.state("b1") == "up"
    wait_for(lambda: http_get(proxy.url("/healthz")) == (200, "ok\n"), what="healthz")


def test_backend_metrics_follow_the_traffic_and_the_state(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1, backend(free_port(), name="dead"), health=FAST_HEALTH)})
    proxy.wait_state("dead", "down")

    def m(family, name):
        return proxy.backend_metric(family, name, "p")

    def states(name):
        return {s: proxy.metric(f'sb_proxy_backend_state{{pool="p",backend="{name}",state="{s}"}}')
                for s in ("up", "draining", "ejected", "down")}

    assert states("dead") == {"up": 0, "draining": 0, "ejected": 0, "down": 1}
    assert states("b1") == {"up": 1, "draining": 0, "ejected": 0, "down": 0}
    assert m("sb_proxy_backend_up", "dead") == 0 and m("sb_proxy_backend_up", "b1") == 1
    assert m("sb_proxy_backend_transitions_total", "dead") == 1  # went down
    assert m("sb_proxy_backend_transitions_total", "b1") == 0  # backends start up
    wait_for(lambda: m("sb_proxy_backend_checks_total", "b1") >= 1, what="a check of b1")
    assert 0 < m("sb_proxy_backend_check_latency_seconds", "b1") < 1

    c = conns.wire(proxy.port, version=4)
    assert c.connect("metered").reason() == 0
    publish = packet(PUBLISH, 0, string("m/1") + b"x" * 1000)
    c.send(publish)
    sent = len(connect_packet("metered", version=4)) + len(publish)
    wait_for(lambda: m("sb_proxy_backend_bytes_to_backend_total", "b1") == sent,
             what=f"{sent} bytes to b1")
    assert m("sb_proxy_backend_bytes_to_client_total", "b1") == 4  # the 3.1.1 CONNACK
    assert m("sb_proxy_backend_connections_total", "b1") == 1
    assert m("sb_proxy_backend_active_connections", "b1") == 1
    assert m("sb_proxy_backend_bytes_to_backend_total", "dead") == 0

    assert proxy.post("/api/backends/b1/drain")[0] == 200
    assert states("b1") == {"up": 0, "draining": 1, "ejected": 0, "down": 0}
    assert m("sb_proxy_backend_up", "b1") == 1  # its checks still find it up


@pytest.mark.parametrize("request_bytes,status", [
    (b"POST /api/backends/b1/weight HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
     + b"1" * 200000, 413),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10000 + b"\r\n\r\n", 431),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
], ids=["body-over-64-KiB", "header-over-8-KiB", "garbage"])
def test_a_request_that_cannot_be_read_gets_an_answer(brokers, start_proxy, request_bytes, status):
    # Not a silent close: the status says why, and arrives (no reset), although the client is
    # still sending the rest.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)})
    with socket.create_connection(("127.0.0.1", proxy.admin_port), timeout=5) as s:
        s.sendall(request_bytes)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]
    assert proxy.backends()["b1"]["weight"] == 1


def test_idle_admin_connections_give_way_to_a_new_one(brokers, start_proxy):
    # The admin port serves 64 connections at once. Clients that keep theirs open and idle cannot
    # lock it (for the 10 s each may wait for its next request): at the cap, the one that has
    # waited longest is closed for the newcomer, as nginx reuses idle keep-alive connections.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)})
    idle = []
    for _ in range(64):
        c = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=5)
        c.request("GET", "/healthz")
        assert c.getresponse().read() == b"ok\n"
        idle.append(c)
    assert http_get(proxy.url("/healthz"), timeout=5) == (200, "ok\n")
    assert idle[0].sock.recv(1) == b""  # closed: it had waited longest
    idle[-1].request("GET", "/healthz")  # the others still serve
    assert idle[-1].getresponse().read() == b"ok\n"
    for c in idle:
        c.close()


def test_with_an_admin_token_only_its_bearer_may_change_backends(brokers, start_proxy):
    token = "s3cret-admin-token-0123"
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)}, settings={"admin_token": token})
    for headers in (None, {"Authorization": "Bearer s3cret-admin-token-0124"},
                    {"Authorization": "Bearer s3cret-admin-token-012"}, {"Authorization": token}):
        answer = {}
        status, body = proxy.post("/api/backends/b1/drain", headers=headers,
                                  answer_headers=answer)
        assert status == 401, (headers, body)
        assert answer.get("WWW-Authenticate") == 'Bearer realm="switchboard"'
    assert proxy.state("b1") == "up"
    status, body = proxy.post("/api/backends/b1/drain",
                              headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert proxy.state("b1") == "draining"
    # Reading stays open to health checkers and Prometheus.
    for path in ("/healthz", "/metrics", "/api/pools"):
        assert http_get(proxy.url(path))[0] == 200, path
    # A reload changes the token: the old one no longer opens the door.
    proxy.settings["admin_token"] = "an-other-admin-token-456"
    proxy.reload()
    assert proxy.post("/api/backends/b1/enable",
                      headers={"Authorization": f"Bearer {token}"})[0] == 401
    assert proxy.post("/api/backends/b1/enable",
                      headers={"Authorization": "Bearer an-other-admin-token-456"})[0] == 200
    assert token not in proxy.log()


def test_sigterm_closes_the_tunnels_and_exits_0(brokers, start_proxy, conns):
    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)})
    held = []
    for i in range(4):
        c = conns.wire(proxy.port, version=4)
        assert c.connect(f"bye-{i}").reason() == 0
        held.append(c)
    assert proxy.metric("sb_proxy_up") == 1
    assert proxy.stop(timeout=5) == 0, proxy.log()
    assert "signal 15: shutting down" in proxy.log()
    for c in held:
        assert c.expect_closed(timeout=2) == []
    for b in (b1, b2):
        wait_for(lambda b=b: b.metric("sb_broker_connections") == 0, what=f"{b.name} empty")
