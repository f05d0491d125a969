"""The access log: with access_log = true, a line per client connection when it ends, from the
logger "access": listener, client address, client id, pool/backend, duration, bytes from and to
the client, and how it ended or why it was not served (proxy/access_log.h)."""
import re
import socket

from conftest import wait_for
from mqtt_wire import PUBLISH, connect_packet, packet, string
from proxy_fixtures import (backend, brokers, conns, echo_server, pool,  # noqa: F401 (fixtures)
                            start_proxy)

LINE = re.compile(r"info \[access\] (\S+) 127\.0\.0\.1:(\d+) (-|\".*\") (\S+)/(\S+) (\d+)ms "
                  r"in=(\d+) out=(\d+) (.+)$")


def access_lines(proxy):
    return [LINE.search(l).groups() for l in proxy.log().splitlines() if "[access]" in l]


def wait_line(proxy, n):
    return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(access_lines(proxy)),
                    what=f"{n} access lines")


def mqtt_listener(access_log=True):
    return [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "access_log": access_log}]


def test_a_session_and_a_refusal_each_get_a_line(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)}, mqtt_listener())
    c = conns.wire(proxy.port, version=4)
    assert c.connect("sensor-7").reason() == 0
    publish = packet(PUBLISH, 0, string("t") + b"x" * 100)
    c.send(publish)
    port = c.sock.getsockname()[1]
    # Without a DISCONNECT, which the broker would answer by closing first ("backend closed").
    c.sock.shutdown(socket.SHUT_WR)
    sent = len(connect_packet("sensor-7", version=4)) + len(publish)
    (line,) = wait_line(proxy, 1)
    assert line[:5] == ("mqtt", str(port), '"sensor-7"', "p", "b1"), line
    assert (int(line[6]), int(line[7]), line[8]) == (sent, 4, "client closed"), line

    bad = conns.socket(proxy.port)
    bad.sendall(b"\x30\x02\x00\x00")  # a PUBLISH first
    wait_line(proxy, 2)
    assert access_lines(proxy)[1][2:5] == ("-", "p", "-")
    assert access_lines(proxy)[1][8] == "rejected: malformed_first_packet"


def test_the_broker_ending_the_session_and_an_odd_client_id(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)}, mqtt_listener())
    odd = 'say "hi"\nto all'
    first = conns.wire(proxy.port, version=5)
    assert first.connect(odd).reason() == 0
    # The same client id again: the broker takes the session over and ends the first one.
    assert conns.wire(proxy.port, version=5).connect(odd).reason() == 0
    (line,) = wait_line(proxy, 1)
    assert line[2] == r'"say \"hi\"\nto all"' and line[8] == "backend closed", line


def test_an_idle_tcp_tunnel_and_no_log_where_it_is_off(brokers, start_proxy, conns, echo_server):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1), "echo": pool(backend(echo_server.port, name="echo"))},
                        [*mqtt_listener(access_log=False),
                         {"name": "tcp", "protocol": "tcp", "pool": "echo", "idle_timeout_s": 1,
                          "access_log": True}])
    unlogged = conns.wire(proxy.port, version=4)
    assert unlogged.connect("unlogged").reason() == 0
    unlogged.close()
    wait_for(lambda: proxy.metric('sb_proxy_listener_active_connections{listener="mqtt"}') == 0,
             what="the mqtt session over")
    s = conns.socket(proxy.ports["tcp"])
    s.sendall(b"ping")
    (line,) = wait_line(proxy, 1)
    assert line[0] == "tcp" and line[2:5] == ("-", "echo", "echo"), line
    assert (line[6], line[7], line[8]) == ("4", "4", "idle timeout"), line
    assert int(line[5]) >= 1000
    assert len(access_lines(proxy)) == 1  # none from the mqtt listener


def test_a_tcp_half_close_is_not_the_end(start_proxy, conns, echo_server):
    # The client half-closes; the session goes on until the service, which answers and closes,
    # ends it: the line says so.
    proxy = start_proxy({"echo": pool(backend(echo_server.port, name="echo"))},
                        [{"name": "tcp", "protocol": "tcp", "pool": "echo", "access_log": True}])
    s = conns.socket(proxy.port)
    s.sendall(b"question")
    s.shutdown(socket.SHUT_WR)
    (line,) = wait_line(proxy, 1)
    assert (line[6], line[7], line[8]) == ("8", "13", "backend closed"), line  # 8 + "<eof>"
