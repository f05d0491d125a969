"""The PROXY protocol v2 end to end: the proxy sends the header, the broker expects it; and the
proxy behind another load balancer, which sends it one."""
import re

from conftest import wait_for
from mqtt_wire import CONNACK, connect_packet
from proxy_fixtures import backend, brokers, conns, pool, proxy_v2, start_proxy  # noqa: F401


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


def upstream_proxy(start_proxy, *backends, **pool_settings):
    """A proxy behind another load balancer: its listener expects that balancer's PROXY header
    first, and writes an access log."""
    return start_proxy({"brokers": pool(*backends, **pool_settings)},
                       [{"name": "mqtt", "protocol": "mqtt", "pool": "brokers",
                         "accept_proxy_protocol": True, "access_log": True}])


def test_an_upstreams_header_names_the_client_to_the_broker(start_broker, start_proxy, conns):
    b1 = start_broker("[broker]\nproxy_protocol = true\n", name="b1")
    b1.name = "b1"
    proxy = upstream_proxy(start_proxy, backend(b1, check=None), proxy_protocol=True)
    # The header in two pieces, then the CONNECT.
    w = conns.wire(proxy.port)
    header = proxy_v2(("203.0.113.7", 4242), ("198.51.100.1", 1883))
    w.send(header[:10])
    w.send(header[10:])
    assert w.connect("upstream").reason() == 0
    w.send(connect_packet("upstream"))  # a protocol error, which the broker logs with the address
    wait_for(lambda: "upstream (203.0.113.7:4242)" in b1.log(), what="the address in b1's log")
    wait_for(lambda: 'mqtt 203.0.113.7:4242 "upstream" brokers/b1' in proxy.log(),
             what="the address in the access log")


def test_source_hashing_hashes_the_upstreams_client(brokers, start_proxy, conns):
    # Every connection comes from 127.0.0.1; the addresses in the headers differ. Hashed by the
    # header's, the same client lands on the same broker each time, and many spread.
    bs = brokers(3)
    proxy = upstream_proxy(start_proxy, *bs, strategy="source-hash", hash_key="source-ip")
    landed = {}
    for i in range(12):
        for attempt in range(2):
            # The header and the CONNECT in one write: the CONNECT comes with the header's read.
            w = conns.wire(proxy.port, version=4)
            header = proxy_v2((f"203.0.113.{i + 1}", 1000 + attempt), ("198.51.100.1", 1883))
            reply, name = proxy.landing(lambda w=w, h=header, i=i, a=attempt: (
                w.send(h + connect_packet(f"h-{i}-{a}", version=4)), w.expect(CONNACK))[1])
            assert reply.reason() == 0
            landed.setdefault(i, set()).add(name)
    assert all(len(names) == 1 for names in landed.values()), landed
    assert len(set().union(*landed.values())) > 1, landed


def test_a_connection_without_the_header_is_closed_and_counted(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = upstream_proxy(start_proxy, b1)
    w = conns.wire(proxy.port)
    w.send(connect_packet("no-header"))
    assert all(p.type != CONNACK for p in w.expect_closed())
    assert proxy.rejected("proxy_header") == 1
    # A LOCAL header (the balancer's own connection, a health check): served as itself.
    w = conns.wire(proxy.port)
    w.send(proxy_v2())
    assert w.connect("local").reason() == 0
    w.disconnect()  # the access log's line comes at the end
    wait_for(lambda: re.search(r'mqtt 127\.0\.0\.1:\d+ "local" brokers/b1', proxy.log()),
             what="the connection's own address in the access log")
