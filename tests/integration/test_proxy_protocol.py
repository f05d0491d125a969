"""The PROXY protocol v2 end to end: the proxy sends the header, the broker expects it."""
from conftest import wait_for
from mqtt_wire import CONNACK, connect_packet
from proxy_fixtures import backend, conns, pool, start_proxy  # noqa: F401 (fixtures)


def test_broker_behind_a_proxy_sending_proxy_headers(start_broker, start_proxy, conns):
    b1 = start_broker("[broker]\nproxy_protocol = true\n", name="b1")
    b1.name = "b1"
    proxy = start_proxy({"brokers": pool(backend(b1, check=None), proxy_protocol=True)})
    # Through the proxy: the header comes first and the session works.
    w = conns.wire(proxy.port)
    assert w.connect("behind-proxy").reason() == 0
    w.subscribe(1, ("t", 1))
    w.publish("t", "hello", qos=0)
    topic, _, _, payload = w.expect(3).publish()
    assert (topic, payload) == ("t", b"hello")
    wait_for(lambda: b1.metric("sb_broker_connections") == 1, what="one session on the broker")


def test_broker_refuses_a_connection_without_the_header(start_broker, conns):
    b1 = start_broker("[broker]\nproxy_protocol = true\n", name="b1")
    w = conns.wire(b1.port)
    w.send(connect_packet("direct"))
    assert all(p.type != CONNACK for p in w.expect_closed())
    wait_for(lambda: b1.metric(
        'sb_broker_connections_rejected_total{reason="proxy_protocol"}') == 1,
        what="the refusal counted")


def test_mqtt_health_checks_send_a_local_header(start_broker, start_proxy, conns):
    # The checks of a pool that sends PROXY headers start with a LOCAL one: without it, a broker
    # expecting the header refused every check and the pool had no backend up.
    b1 = start_broker("[broker]\nproxy_protocol = true\n", name="b1")
    b1.name = "b1"
    proxy = start_proxy({"brokers": pool(backend(b1, check=None), proxy_protocol=True,
                                         health={"type": "mqtt", "interval_ms": 100,
                                                 "rise": 1, "fall": 1})})
    m = 'pool="brokers",backend="b1"'
    wait_for(lambda: proxy.metric(f"sb_proxy_backend_checks_total{{{m}}}") >= 3,
             what="three checks")
    assert proxy.metric(f"sb_proxy_backend_checks_failed_total{{{m}}}") == 0
    assert proxy.state("b1") == "up"
    assert b1.metric('sb_broker_connections_rejected_total{reason="proxy_protocol"}') == 0
    assert conns.wire(proxy.port).connect("checked").reason() == 0


def test_the_broker_knows_the_client_by_the_headers_address(start_broker, start_proxy, conns):
    # The broker's connection comes from the proxy; the header names the client: 127.0.0.7 here.
    b1 = start_broker("[broker]\nproxy_protocol = true\n", name="b1")
    b1.name = "b1"
    proxy = start_proxy({"brokers": pool(backend(b1, check=None), proxy_protocol=True)})
    first = conns.wire(proxy.port, source_ip="127.0.0.7")
    assert first.connect("known").reason() == 0
    # A second CONNECT is a protocol error, which the broker logs with the client's address.
    first.send(connect_packet("known"))
    wait_for(lambda: "known (127.0.0.7:" in b1.log(), what="the client's address in b1's log")
