"""tcp listeners: the proxy in front of any TCP service (an echo server of the test). Bytes both
ways, urgent data, half-close, the idle timeout, and the PROXY protocol v2 header that tells the
service who the client is (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2), also
when an upstream balancer's header names it."""
import os
import signal
import socket
import struct
import time

from conftest import wait_for
from proxy_fixtures import (PROXY_SIGNATURE, backend, conns, echo_server, is_closed,  # noqa
                            pool, proxy_v2, recv_until, silent_server, start_proxy)


def tcp_proxy(start_proxy, echo_server, idle_timeout_s=600, accept_proxy_protocol=False,
              **pool_settings):
    return start_proxy({"echo": pool(backend(echo_server.port, name="echo"), **pool_settings)},
                       [{"name": "tcp", "protocol": "tcp", "pool": "echo",
                         "idle_timeout_s": idle_timeout_s,
                         "accept_proxy_protocol": accept_proxy_protocol}])


def test_proxy_protocol_v2_header_names_the_client(start_proxy, conns, echo_server):
    proxy = tcp_proxy(start_proxy, echo_server, proxy_protocol=True)
    # From a source address of our choosing, so that the header cannot be right by accident.
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5,
                                 source_address=("127.0.0.7", 0))
    conns.track(s)
    client_ip, client_port = s.getsockname()
    s.sendall(b"hello")
    wait_for(lambda: len(echo_server.received) == 1 and len(echo_server.received[0]) >= 33,
             what="the header and the data at the echo server")
    got = echo_server.received[0]
    assert got[:12] == PROXY_SIGNATURE
    assert got[12] == 0x21, "version 2, command PROXY"
    assert got[13] == 0x11, "TCP over IPv4"
    assert struct.unpack("!H", got[14:16])[0] == 12
    src, dst = socket.inet_ntoa(got[16:20]), socket.inet_ntoa(got[20:24])
    src_port, dst_port = struct.unpack("!HH", got[24:28])
    assert (src, src_port) == (client_ip, client_port) == ("127.0.0.7", client_port)
    assert (dst, dst_port) == ("127.0.0.1", proxy.port)
    assert got[28:] == b"hello", "the client's bytes follow the header, untouched"


def test_an_upstreams_header_is_taken_and_its_client_passed_on(start_proxy, conns, echo_server):
    # Behind another load balancer (accept_proxy_protocol): its header names the client; the
    # proxy reads it, and the header it sends on names that client, not the balancer.
    proxy = tcp_proxy(start_proxy, echo_server, accept_proxy_protocol=True, proxy_protocol=True)
    s = conns.socket(proxy.port)
    upstream = proxy_v2(("203.0.113.7", 4242), ("198.51.100.1", 9000))
    s.sendall(upstream + b"hello")
    # The echo server sends back what it got: a header naming the same client, and the bytes.
    assert recv_until(s, len(upstream) + 5) == upstream + b"hello"
    assert b"".join(echo_server.received) == upstream + b"hello"


def send_with_urgent_byte(proxy, sock, before, urgent, after):
    """Sends `before`, `urgent` out of band (MSG_OOB) and `after` while the proxy is stopped, so
    that it finds them all at once: a read stops short at the urgent byte's mark, and a proxy
    that took that for the end of what there is would wait for more and never read the rest."""
    proxy.signal(signal.SIGSTOP)
    try:
        sock.sendall(before)
        sock.send(urgent, socket.MSG_OOB)
        sock.sendall(after)
    finally:
        proxy.signal(signal.SIGCONT)


def test_urgent_data_is_passed_on_in_the_stream(start_proxy, conns, echo_server):
    # A byte sent out of band reaches the service in its place in the stream; read as usual,
    # without SO_OOBINLINE, it would be skipped and lost.
    proxy = tcp_proxy(start_proxy, echo_server)
    s = conns.socket(proxy.port)
    s.sendall(b"a")
    assert recv_until(s, 1) == b"a"
    send_with_urgent_byte(proxy, s, b"b", b"c", b"d")
    assert recv_until(s, 3) == b"bcd"
    assert b"".join(echo_server.received) == b"abcd"


def test_urgent_data_from_the_service_reaches_the_client(start_proxy, conns):
    # The other way: a service of the test's own sends a byte out of band.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        proxy = start_proxy({"svc": pool(backend(port, name="svc"))},
                            [{"name": "tcp", "protocol": "tcp", "pool": "svc"}])
        s = conns.socket(proxy.port)
        server.settimeout(5)
        peer, _ = server.accept()
        with peer:
            send_with_urgent_byte(proxy, peer, b"x", b"y", b"z")
            assert recv_until(s, 3) == b"xyz"


def test_no_proxy_header_unless_configured(start_proxy, conns, echo_server):
    proxy = tcp_proxy(start_proxy, echo_server)
    s = conns.socket(proxy.port)
    s.sendall(b"plain")
    assert recv_until(s, 5) == b"plain"
    assert echo_server.received == [b"plain"]


def test_bytes_flow_both_ways(start_proxy, conns, echo_server):
    proxy = tcp_proxy(start_proxy, echo_server)
    s = conns.socket(proxy.port)
    # 4 MiB, more than socket buffers hold: the proxy must apply backpressure, not drop or stall.
    data = os.urandom(4 << 20)
    sent = 0
    got = b""
    s.setblocking(False)
    deadline = time.monotonic() + 20
    while len(got) < len(data):
        assert time.monotonic() < deadline, f"stalled at {sent} sent, {len(got)} received"
        if sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
        try:
            chunk = s.recv(1 << 20)
            assert chunk, "closed early"
            got += chunk
        except BlockingIOError:
            time.sleep(0.001)  # nothing to read yet; poll again (a busy loop otherwise)
    assert got == data
    b = proxy.backends("echo")["echo"]
    assert b["active"] == 1


def test_half_close_passes_the_end_of_stream_and_keeps_receiving(start_proxy, conns,
                                                                 echo_server):
    proxy = tcp_proxy(start_proxy, echo_server)
    s = conns.socket(proxy.port)
    s.sendall(b"before the end")
    s.shutdown(socket.SHUT_WR)
    # The echo server answers the end of stream with "<eof>" after the echo: both arrive after
    # our half-close, then the server's own end of stream.
    assert recv_until(s, 100) == b"before the end<eof>"
    assert is_closed(s, timeout=2)
    wait_for(lambda: echo_server.closed == [True], what="the server's side closed")
    wait_for(lambda: proxy.active("echo") == {"echo": 0}, what="the tunnel closed")


def test_a_service_that_ends_first_still_hears_the_client(start_proxy, conns):
    # The other way round: the service says its piece and half-closes; the client gets it and
    # the end of stream, and what it sends afterwards still reaches the service.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        proxy = start_proxy({"svc": pool(backend(listener.getsockname()[1], name="svc"))},
                            [{"name": "tcp", "protocol": "tcp", "pool": "svc"}])
        s = conns.socket(proxy.port)
        service, _ = listener.accept()
        with service:
            service.sendall(b"greeting")
            service.shutdown(socket.SHUT_WR)
            assert recv_until(s, 100) == b"greeting"
            s.settimeout(2)
            assert s.recv(1) == b""  # the end of stream, not a timeout
            s.sendall(b"the client's answer")
            s.shutdown(socket.SHUT_WR)
            assert recv_until(service, 100) == b"the client's answer"
            service.settimeout(2)
            assert service.recv(1) == b""
    assert is_closed(s, timeout=2)
    wait_for(lambda: proxy.active("svc") == {"svc": 0}, what="the tunnel closed")


def test_idle_tunnel_is_closed_after_idle_timeout(start_proxy, conns, echo_server):
    proxy = tcp_proxy(start_proxy, echo_server, idle_timeout_s=1)
    busy = conns.socket(proxy.port)
    idle = conns.socket(proxy.port)
    idle.sendall(b"x")
    assert recv_until(idle, 1) == b"x"
    last_activity = time.monotonic()
    closed_after = None
    # The busy connection talks every 300 ms and must outlive the idle one.
    while closed_after is None:
        busy.sendall(b"tick")
        assert recv_until(busy, 4) == b"tick"
        if is_closed(idle, timeout=0.3):
            closed_after = time.monotonic() - last_activity
        assert time.monotonic() - last_activity < 3, "the idle tunnel was not closed"
    assert 0.9 <= closed_after <= 2.0, closed_after
    busy.sendall(b"still")
    assert recv_until(busy, 5) == b"still"
    wait_for(lambda: True in echo_server.closed, what="the server's side of the idle tunnel")


def test_clients_that_connect_and_leave_do_not_eject_the_service(start_proxy, conns,
                                                                 silent_server):
    # TCP pings, port scanners, an upstream balancer's checks: a client closes at once and the
    # service closes in turn without a byte. That is an answer to the client's end of stream,
    # not a refused connection; it must not count as a failure of the service.
    proxy = start_proxy({"svc": pool(backend(silent_server.port, name="svc"),
                                     passive={"failures": 3, "eject_base_ms": 10000})},
                        [{"name": "tcp", "protocol": "tcp", "pool": "svc"}])
    for i in range(6):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.shutdown(socket.SHUT_WR)
        assert is_closed(s, timeout=2)
        s.close()
    wait_for(lambda: silent_server.closed == [True] * 6, what="the service saw all six")
    wait_for(lambda: proxy.active("svc") == {"svc": 0}, what="all tunnels closed")
    assert proxy.backend_metric("sb_proxy_backend_connect_errors_total", "svc", "svc") == 0
    assert proxy.state("svc") == "up"
