"""An MQTT listener's gate: the first packet must be a CONNECT arriving within connect_timeout_ms
(MQTT 3.1.1 and 5.0 §3.1: anything else closes the connection), each refusal counted by reason;
and the idle timeout of a tunnel, which must leave a client that keeps its keep alive alone; the
listener's limits on open connections and on new ones per second."""
import contextlib
import selectors
import signal
import socket
import threading
import time

import pytest

from conftest import wait_for
from mqtt_wire import (AUTH, AUTHENTICATION_METHOD, CONNACK, DISCONNECT, PUBLISH,
                       SERVER_KEEP_ALIVE, connect_packet, p_str, p_u16, packet, props, string)
from proxy_fixtures import (backend, brokers, conns, is_closed, is_open, pool,  # noqa: F401
                            start_proxy)

CONNECT_TIMEOUT_MS = 300


@pytest.fixture
def gate(brokers, start_proxy):
    (b1,) = brokers(1)
    return start_proxy({"p": pool(b1)},
                       [{"name": "mqtt", "protocol": "mqtt", "pool": "p",
                         "connect_timeout_ms": CONNECT_TIMEOUT_MS}])


def wait_closed(sock, seconds):
    """Waits for the proxy to close `sock`, failing if it takes longer than `seconds`."""
    wait_for(lambda: is_closed(sock), timeout=seconds, what="the proxy to close the connection")


@pytest.mark.parametrize("first_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",            # not MQTT at all (type 4 with bad flags)
    packet(PUBLISH, 0, string("t/1") + b"payload"),  # a whole, valid PUBLISH before CONNECT
    b"\x30\x7f" + string("t/1"),                     # the start of a PUBLISH: its type says enough
    b"\x10\xff\xff\xff\xff\x01",                     # CONNECT with a five-byte remaining length
    connect_packet("big", version=4)[:1] + b"\xff\xff\x7f",  # a CONNECT over max_connect_bytes
    packet(1, 0, string("MQTT") + bytes([4, 0x01, 0, 10]) + string("c")),  # reserved flag set
], ids=["http", "publish", "partial-publish", "bad-length", "too-big", "bad-connect-flags"])
def test_malformed_first_packet_is_closed_and_counted(gate, conns, first_bytes):
    s = conns.socket(gate.port)
    s.sendall(first_bytes)
    # Well before the connect timeout: the proxy knows at once that this is no CONNECT.
    wait_closed(s, CONNECT_TIMEOUT_MS / 1000 * 0.8)
    wait_for(lambda: gate.rejected("malformed_first_packet") == 1, what="the refusal counted")
    assert gate.rejected("connect_timeout") == 0
    assert gate.active() == {"b1": 0}


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unsupported_protocol_level_gets_connack_0x01(gate, conns, version):
    # MQTT 3.1.1 §3.1.2.2 [MQTT-3.1.2-2]: CONNACK return code 0x01 then close, in the 3.1.1 form
    # every client version understands (5.0 §3.1.2.2 allows 0x84 too; the broker answers alike).
    c = conns.wire(gate.port, version=4)
    c.send(packet(1, 0, string("MQTT") + bytes([version + 2, 0x02, 0, 10]) + string("c")))
    ack = c.expect(2)
    assert ack.body == b"\x00\x01"
    assert c.expect_closed() == []
    wait_for(lambda: gate.rejected("malformed_first_packet") == 1, what="the refusal counted")
    assert gate.active() == {"b1": 0}


def test_refused_client_that_keeps_sending_does_not_hold_the_worker(brokers, start_proxy, conns):
    # After its refusing CONNACK the proxy reads what the client still sends, for up to a second,
    # so that a reset does not destroy the answer. A client that never stops sending must not keep
    # the worker's only thread reading (the second only ends a wait): it is cut off after 64 KiB,
    # long before that second is up.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)}, threads=1)
    flooder = conns.wire(proxy.port, version=4)
    flooder.send(packet(1, 0, string("MQTT") + bytes([7, 0x02, 0, 10]) + string("c")))
    closed = threading.Event()

    def flood():
        try:
            while True:
                flooder.sock.sendall(bytes(65536))
        except socket.timeout:
            return  # neither read nor closed: the assertion below fails
        except OSError:
            closed.set()

    threading.Thread(target=flood, daemon=True).start()
    assert closed.wait(0.8), "the proxy kept reading a refused client"
    assert conns.wire(proxy.port, version=4).connect("next").reason() == 0
    wait_for(lambda: proxy.rejected("malformed_first_packet") == 1, what="the refusal counted")


@pytest.mark.parametrize("first_bytes", [b"", connect_packet("slow", version=4)[:7]],
                         ids=["silent", "half-connect"])
def test_client_without_connect_is_closed_after_connect_timeout(gate, conns, first_bytes):
    s = conns.socket(gate.port)
    start = time.monotonic()
    s.sendall(first_bytes)
    wait_for(lambda: is_closed(s), timeout=CONNECT_TIMEOUT_MS / 1000 + 1,
             what="the proxy to close a client that sends no CONNECT")
    elapsed = time.monotonic() - start
    assert elapsed >= CONNECT_TIMEOUT_MS / 1000 * 0.9, f"closed after {elapsed:.3f}s"
    wait_for(lambda: gate.rejected("connect_timeout") == 1, what="the timeout counted")
    assert gate.rejected("malformed_first_packet") == 0


def test_valid_connect_in_pieces_passes(gate, conns):
    # A CONNECT split over several reads is waited for, not refused.
    c = conns.wire(gate.port, version=4)
    data = connect_packet("pieces", version=4)
    for i in range(len(data)):
        c.send(data[i:i + 1])
    assert c.expect(2).reason() == 0
    assert is_open(c)


def test_listener_counts_open_connections(gate, conns):
    held = []
    for i in range(3):
        c = conns.wire(gate.port, version=4)
        assert c.connect(f"counted-{i}").reason() == 0
        held.append(c)
    key = 'sb_proxy_listener_active_connections{listener="mqtt"}'
    # Open tunnels are open client connections, not only those still choosing a backend.
    assert gate.metric(key) == 3
    assert gate.metric('sb_proxy_listener_accepted_total{listener="mqtt"}') == 3
    for c in held:
        c.disconnect()
        c.close()
    wait_for(lambda: gate.metric(key) == 0, what="the listener's connections closed")


def test_keep_alive_sets_the_idle_timeout_above_the_listeners(brokers, start_proxy, conns):
    # idle_timeout_s = 1 applies to clients without keep alive; a client with keep alive 2 s that
    # pings every second must stay for 6 s (the tunnel's idle timeout is above 1.5 x 2 s).
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)}, [{"name": "mqtt", "protocol": "mqtt", "pool": "p",
                                           "idle_timeout_s": 1}])
    pinging = conns.wire(proxy.port, version=4)
    assert pinging.connect("pinging", keepalive=2).reason() == 0
    silent = conns.wire(proxy.port, version=4)
    assert silent.connect("silent", keepalive=0).reason() == 0
    silent_since = time.monotonic()
    silent_closed = None
    start = time.monotonic()
    while time.monotonic() - start < 6.0:
        pinging.ping()
        if silent_closed is None and is_closed(silent):
            silent_closed = time.monotonic() - silent_since
        # Pacing the PINGREQs at one per second, as the client of the test would.
        time.sleep(1.0 - (time.monotonic() - start) % 1.0)
    assert is_open(pinging)
    assert silent_closed is not None and 0.9 <= silent_closed <= 2.5, silent_closed


def test_a_server_keep_alive_sets_the_idle_timeout(start_broker, start_proxy, conns):
    # An MQTT 5 client asking for no keep alive is told one by the broker (Server Keep Alive, 5 s
    # here) and follows it; so does the proxy's idle timeout (twice it, and at least 10 s), not
    # the listener's 1 s for clients without a keep alive.
    b1 = start_broker("[limits]\nmax_keepalive_s = 5\n", name="b1")
    proxy = start_proxy({"p": pool(b1)}, [{"name": "mqtt", "protocol": "mqtt", "pool": "p",
                                           "idle_timeout_s": 1}])
    c = conns.wire(proxy.port, version=5)
    ack = c.connect("told", keepalive=0)
    assert ack.reason() == 0 and ack.properties().get(SERVER_KEEP_ALIVE) == 5
    c.expect_silence(2.5)  # past the listener's idle timeout, within the broker's
    c.ping()


@pytest.mark.parametrize("cut", [False, True], ids=["in-one-read", "a-byte-at-a-time"])
def test_a_server_keep_alive_behind_an_auth_exchange_sets_the_idle_timeout(start_proxy, conns, cut):
    # With enhanced authentication (MQTT 5.0 §4.12) AUTH packets come before the CONNACK: the
    # Server Keep Alive is read from the CONNACK behind them. A scripted backend sends both at
    # once, or a byte per TCP segment, so that the proxy reads them cut anywhere.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []

    def serve():
        conn, _ = server.accept()
        conn.recv(65536)  # the CONNECT
        auth = packet(AUTH, 0, bytes([0x18]) + props(p_str(AUTHENTICATION_METHOD, "x")))
        connack = packet(CONNACK, 0, bytes([0, 0]) + props(p_u16(SERVER_KEEP_ALIVE, 5)))
        if cut:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(auth + connack)):
                conn.sendall((auth + connack)[i:i + 1])
                time.sleep(0.01)  # one segment, and one read, per byte
        else:
            conn.sendall(auth + connack)
        held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = start_proxy({"p": pool(backend(server.getsockname()[1], name="scripted"))},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "idle_timeout_s": 1}])
    c = conns.wire(proxy.port, version=5)
    c.send(connect_packet("authed", version=5, keepalive=0))
    c.expect(AUTH)
    assert c.expect(CONNACK).properties().get(SERVER_KEEP_ALIVE) == 5
    c.expect_silence(2.5)  # past the listener's idle timeout
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_broker_closes_a_silent_keep_alive_client_first(brokers, start_proxy, conns):
    # A client with keep alive 1 s that goes silent is closed by the broker after 1.5 s (MQTT
    # 3.1.1 §3.1.2.10), not by the proxy; the proxy's idle timeout is well above that.
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)})
    c = conns.wire(proxy.port, version=4)
    assert c.connect("quiet", keepalive=1).reason() == 0
    start = time.monotonic()
    wait_for(lambda: is_closed(c), timeout=4, what="the keep alive timeout")
    assert time.monotonic() - start >= 1.4
    wait_for(lambda: b1.metric("sb_broker_connections") == 0, what="the broker's side closed")
    c.close()  # as a client does on end of stream; the proxy passed the broker's on as a FIN
    wait_for(lambda: proxy.active() == {"b1": 0}, what="the tunnel closed")


def test_counts_return_to_zero_after_a_storm(brokers, start_proxy, conns):
    # 150 clients at once from many threads: a third leave right after their CONNECT (while the
    # proxy is still choosing or connecting), a third reset the connection after the CONNACK, a
    # third disconnect properly. Afterwards nothing may be left counted anywhere.
    import socket as socketlib
    import struct
    from concurrent.futures import ThreadPoolExecutor
    from mqtt_wire import DISCONNECT

    b1, b2 = brokers(2)
    proxy = start_proxy({"p": pool(b1, b2)})

    def client(i):
        s = socketlib.create_connection(("127.0.0.1", proxy.port), timeout=5)
        try:
            s.sendall(connect_packet(f"storm-{i}", version=4))
            if i % 3 == 0:
                return
            assert s.recv(4)[:1] == b"\x20"
            if i % 3 == 1:  # abortive close: RST instead of FIN
                s.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                s.sendall(packet(DISCONNECT, 0, b""))
        finally:
            s.close()

    with ThreadPoolExecutor(max_workers=30) as pool_:
        list(pool_.map(client, range(150)))
    wait_for(lambda: proxy.active() == {"b1": 0, "b2": 0}, what="no backend connection counted")
    wait_for(lambda: proxy.metric('sb_proxy_listener_active_connections{listener="mqtt"}') == 0,
             what="no listener connection counted")
    for b in (b1, b2):
        wait_for(lambda b=b: b.metric("sb_broker_connections") == 0, what=f"{b.name} empty")
    assert proxy.metric('sb_proxy_listener_accepted_total{listener="mqtt"}') == 150
    assert proxy.metric('sb_proxy_backend_connect_errors_total{pool="p",backend="b1"}') == 0
    assert proxy.metric('sb_proxy_backend_connect_errors_total{pool="p",backend="b2"}') == 0


def test_the_brokers_last_words_reach_a_client_still_sending(start_broker, start_proxy, conns):
    # The broker refuses a PUBLISH over its maximum packet size while the client is still sending
    # it: DISCONNECT 0x95, then it closes. Through the proxy the client must get those words and a
    # clean end of stream, not a reset (which could destroy them before they are read).
    b1 = start_broker("[limits]\nmax_packet_bytes = 1024\n", name="b1")
    b1.name = "b1"
    proxy = start_proxy({"p": pool(backend(b1, check=None))})
    c = conns.wire(proxy.port)
    assert c.connect("too-big").reason() == 0
    c.sock.sendall(packet(PUBLISH, 0, string("big/t") + props() + bytes(2_000_000)))
    c.sock.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := c.sock.recv(65536):  # a reset raises
        answer += chunk
    assert answer[0] == 0xE0 and answer[2] == 0x95, answer  # DISCONNECT, packet too large


def scripted_session(listener, proxy, conns, client_id):
    """A client through `proxy` to the broker played on `listener`, connected (CONNACK sent), and
    flooding until the proxy holds bytes the broker does not read. Returns (client, broker
    socket)."""
    c = conns.wire(proxy.port, version=5)
    hello = connect_packet(client_id, version=5)
    c.send(hello)
    listener.settimeout(5)
    broker, _ = listener.accept()
    broker.settimeout(5)
    got = b""
    while len(got) < len(hello):
        got += broker.recv(len(hello) - len(got))
    broker.sendall(packet(CONNACK, 0, b"\x00\x00" + props()))
    assert c.expect(CONNACK).reason() == 0
    c.sock.setblocking(False)
    flood = memoryview(packet(PUBLISH, 0, string("t") + props() + bytes(32_000_000)))
    sent = 0
    with pytest.raises(BlockingIOError):
        while sent < len(flood):
            sent += c.sock.send(flood[sent:])
    return c, broker


def scripted_broker():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return listener


def test_the_brokers_last_words_survive_a_failed_write_to_it(start_proxy, conns):
    """A broker that stops reading, says why and closes resets the connection (the client's
    bytes lie unread). When the proxy learns of the reset while it holds client bytes for the
    broker, the write fails before the broker's last bytes are read: they reached the client
    all the same. Before, the failed write closed the broker's socket with them unread. The
    broker is scripted here, and the proxy stopped while it speaks, so that the proxy finds its
    words and the reset at once."""
    with scripted_broker() as listener:
        proxy = start_proxy({"p": pool(backend(listener.getsockname()[1], name="scripted"))})
        c, broker = scripted_session(listener, proxy, conns, "last-words")
        with broker:
            proxy.signal(signal.SIGSTOP)
            try:
                broker.sendall(packet(DISCONNECT, 0, b"\x95" + props()))  # packet too large
            finally:
                broker.close()  # with bytes unread: a reset
                proxy.signal(signal.SIGCONT)
    c.sock.settimeout(5)
    answer = b""
    with contextlib.suppress(ConnectionResetError):  # once the proxy stops dropping its bytes
        while chunk := c.sock.recv(65536):
            answer += chunk
    assert answer == packet(DISCONNECT, 0, b"\x95" + props())


def test_a_client_that_does_not_read_the_brokers_last_words_goes_after_a_second(start_proxy,
                                                                              conns):
    """As above, but the broker's last words fill the client's buffers, and the client reads
    nothing: the proxy keeps them for a second, as when it lingers, not for the idle timeout (two
    minutes for this keep alive)."""
    with scripted_broker() as listener:
        proxy = start_proxy({"p": pool(backend(listener.getsockname()[1], name="scripted"))})
        c, broker = scripted_session(listener, proxy, conns, "deaf")
        with broker:
            broker.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    broker.send(bytes(65536))
        # Closed with the client's bytes unread: a reset.
        wait_for(lambda: proxy.metric('sb_proxy_listener_active_connections{listener="mqtt"}')
                 == 0, timeout=5, what="the tunnel closed")


def test_max_connections_closes_the_excess_at_once(brokers, start_proxy, conns):
    (b1,) = brokers(1)
    proxy = start_proxy({"p": pool(b1)},
                        [{"name": "mqtt", "protocol": "mqtt", "pool": "p", "max_connections": 3}])
    held = [conns.wire(proxy.port, version=4) for _ in range(3)]
    for i, c in enumerate(held):
        assert c.connect(f"held-{i}").reason() == 0
    extra = conns.wire(proxy.port, version=4)
    extra.send(connect_packet("extra", version=4))
    assert extra.expect_closed() == []  # no CONNACK: closed at accept, before reading anything
    assert proxy.rejected("max_connections") == 1
    assert proxy.active() == {"b1": 3}
    # A place freed is a place taken.
    held[0].close()
    wait_for(lambda: proxy.metric('sb_proxy_listener_active_connections{listener="mqtt"}') == 2,
             what="the closed client gone")
    assert conns.wire(proxy.port, version=4).connect("next").reason() == 0
    assert proxy.rejected("max_connections") == 1


def test_max_connection_rate_paces_a_storm_of_connects(brokers, start_proxy, conns):
    # 20 connections per second, in bursts of 2 (a tenth of a second's worth): 30 clients that
    # connect at once wait in the accept queue and are all served, paced. The k-th CONNACK comes
    # no sooner than k - 1 intervals of 50 ms after the first, less 100 ms for a first one seen
    # late on a busy machine; without the limit all 30 come within a few milliseconds.
    (b1,) = brokers(1)
    rate, n = 20, 30
    proxy = start_proxy({"p": pool(b1)}, [{"name": "mqtt", "protocol": "mqtt", "pool": "p",
                                           "max_connection_rate": rate}])
    socks = [conns.socket(proxy.port) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(connect_packet(f"storm-{i}", version=4))
    arrived = []
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                assert key.fileobj.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
                arrived.append(time.monotonic())
                sel.unregister(key.fileobj)
    assert len(arrived) == n, f"{len(arrived)} of {n} served"
    for k, t in enumerate(arrived):
        assert t - arrived[0] >= (k - 1) / rate - 0.1, (k, t - arrived[0])
    assert proxy.metric('sb_proxy_listener_rate_limited_total{listener="mqtt"}') > 0
    assert proxy.metric('sb_proxy_listener_accepted_total{listener="mqtt"}') == n
