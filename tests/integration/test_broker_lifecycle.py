"""The process: admin endpoints (/healthz, /metrics), graceful shutdown on SIGTERM, and refusing a
bad configuration before binding anything."""
import http.client
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, ROOT, both_versions, free_port, http_get, wait_for
from mqtt_wire import (CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, connect_packet, packet,
                       string)


def test_healthz_and_unknown_paths(broker):
    assert http_get(f"http://127.0.0.1:{broker.admin_port}/healthz") == (200, "ok\n")
    assert http_get(f"http://127.0.0.1:{broker.admin_port}/nope")[0] == 404
    c = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=5)
    c.request("POST", "/healthz")
    r = c.getresponse()
    assert (r.status, r.getheader("Allow")) == (405, "GET")
    c.close()


def test_metrics_count_what_happened(broker, clients):
    m = broker.metrics()
    assert m["sb_broker_up"] == 1
    assert m["sb_broker_connections"] == 0

    sub = clients.wire(broker.port)
    sub.connect("sub")
    sub.subscribe(1, ("m/#", 2))
    pub = clients.wire(broker.port, 4)
    pub.connect("pub")
    assert broker.metric("sb_broker_connections") == 2
    assert broker.metric("sb_broker_sessions") == 2
    assert broker.metric("sb_broker_subscriptions") == 1

    pub.publish("m/0", b"x")
    pub.publish("m/1", b"x", qos=1, packet_id=1)
    pub.expect(PUBACK)
    for pid in (2, 3):
        pub.publish("m/2", b"x", qos=2, packet_id=pid)
        pub.expect(PUBREC)
        pub.ack(PUBREL, pid)
        pub.expect(PUBCOMP)
    pub.publish("nobody/listens", b"x", retain=True)
    pub.ping()  # answered after the publish before it: the broker has taken that one
    got = [sub.expect_message() for _ in range(4)]
    assert [m.qos for m in got] == [0, 1, 2, 2]
    sub.ack(PUBACK, got[1].packet_id)
    for m in got[2:]:
        sub.ack(PUBREC, m.packet_id)
    for _ in got[2:]:
        sub.ack(PUBCOMP, sub.expect(PUBREL).packet_id())

    # Refused connections, by reason.
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(b"\xff\xff")
    s.recv(10)
    s.close()
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(packet(CONNECT, 0, string("MQTT") + bytes([6, 2, 0, 10]) + string("c")))
    s.recv(10)
    s.close()

    wait_for(lambda: broker.metric(
        'sb_broker_connections_rejected_total{reason="unsupported_version"}') == 1,
             what="the rejected connection to be counted")
    m = broker.metrics()
    expected = {
        'sb_broker_messages_received_total{qos="0"}': 2,
        'sb_broker_messages_received_total{qos="1"}': 1,
        'sb_broker_messages_received_total{qos="2"}': 2,
        'sb_broker_messages_sent_total{qos="0"}': 1,
        'sb_broker_messages_sent_total{qos="1"}': 1,
        'sb_broker_messages_sent_total{qos="2"}': 2,
        "sb_broker_messages_unrouted_total": 1,
        "sb_broker_retained_messages": 1,
        'sb_broker_connections_rejected_total{reason="malformed_connect"}': 1,
        'sb_broker_connections_rejected_total{reason="unsupported_version"}': 1,
        'sb_broker_connections_rejected_total{reason="max_connections"}': 0,
        'sb_broker_messages_dropped_total{reason="queue_full"}': 0,
        "sb_broker_connections_accepted_total": 4,
    }
    assert {k: m.get(k) for k in expected} == expected
    assert m["sb_broker_bytes_received_total"] > 0 and m["sb_broker_bytes_sent_total"] > 0

    sub.close()
    pub.close()
    broker.wait_connections(0)
    assert broker.metric("sb_broker_sessions") == 0


def test_sigterm_disconnects_clients_and_exits_zero(broker, clients):
    v5 = [clients.wire(broker.port, 5) for _ in range(4)]
    for i, c in enumerate(v5):
        c.connect(f"v5-{i}")  # four ids, spread over both shards
    old = clients.wire(broker.port, 4)
    old.connect("v311")
    start = time.monotonic()
    broker.signal(signal.SIGTERM)
    for c in v5:
        seen = c.expect_closed()
        assert [(p.type, p.reason()) for p in seen] == [(DISCONNECT, 0x8B)]  # Server shutting down
        c.close()
    assert old.expect_closed() == []
    old.close()
    broker.proc.wait(timeout=5)
    elapsed = time.monotonic() - start
    assert broker.proc.returncode == 0, broker.log()
    assert elapsed < 1.5, f"shutdown took {elapsed:.2f} s"


def test_sigterm_does_not_wait_for_sockets_without_connect(broker, clients):
    # A socket still in its handshake is closed at shutdown, not left to its connect timeout.
    idle = socket.create_connection(("127.0.0.1", broker.port))
    half = socket.create_connection(("127.0.0.1", broker.port))
    half.sendall(connect_packet("half")[:6])
    c = clients.wire(broker.port)
    c.connect("complete")
    wait_for(lambda: broker.metric("sb_broker_connections_accepted_total") == 3,
             what="all three sockets accepted")
    start = time.monotonic()
    broker.signal(signal.SIGTERM)
    assert [p.reason() for p in c.expect_closed()] == [0x8B]
    c.close()
    for s in (idle, half):
        s.settimeout(3)  # still open after 3 s: the recv raises a timeout
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            # Closed with its partial CONNECT still unread by the broker: a reset, not a FIN.
            assert s is half
        s.close()
    broker.proc.wait(timeout=5)
    elapsed = time.monotonic() - start
    assert broker.proc.returncode == 0
    assert elapsed < 1.0, f"shutdown took {elapsed:.2f} s"


def test_sigterm_with_paho_client(broker, clients):
    c = clients.paho(broker.port, "paho-shutdown", 5)
    broker.signal(signal.SIGTERM)
    wait_for(lambda: c.disconnects, what="paho to see the connection end")
    broker.proc.wait(timeout=5)
    assert broker.proc.returncode == 0


def test_sigterm_with_idle_broker_is_prompt(broker):
    start = time.monotonic()
    broker.signal(signal.SIGTERM)
    broker.proc.wait(timeout=5)
    assert broker.proc.returncode == 0
    assert time.monotonic() - start < 1.0
    assert "stopped" in broker.log()


# ---- Configuration errors ------------------------------------------------------------------------

def run_with_config(tmp_path, text, name="bad.toml"):
    """Runs the broker on `text` with its port taken by another socket: a broker that bound before
    checking its configuration would fail with an address error instead of the config error."""
    path = tmp_path / name
    path.write_text(text)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [BIN / "switchboard-broker", "--config", path, "--listen", f"127.0.0.1:{port}",
             "--admin", f"127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=5)
    return path, result


@pytest.mark.parametrize("text,line,needles", [
    ("[limits]\nmax_inflight = 0\n", 2,
     ["limits.max_inflight", "expected an integer from 1 to 65535, got 0"]),
    ("[limits]\nmax_inflight = \"lots\"\n", 2, ["limits.max_inflight", "expected an integer"]),
    ("[broker]\nthreads = 1\n\n[limits]\nmax_inflights = 3\n", 5,
     ["limits.max_inflights", "unknown key"]),
    ("[limts]\nmax_inflight = 3\n", 1, ["limts", "unknown key"]),
    ("[broker]\nlog_level = \"loud\"\n", 2, ["broker.log_level", "expected one of", "loud"]),
    ("[broker]\nlisten = \"nowhere\"\n", 2, ["broker.listen"]),
    ("[[acl]]\naction = \"deny\"\nfilter = \"a/#/b\"\n", 3,
     ["acl[0].filter", "expected a valid MQTT topic filter"]),
    ("[[acl]]\nfilter = \"a/b\"\n", None, ["acl[0].action", "required"]),
])
def test_bad_config_is_reported_with_file_key_and_expectation(tmp_path, text, line, needles):
    path, result = run_with_config(tmp_path, text)
    assert result.returncode == 2, result
    err = result.stderr
    where = f"{path}:{line}:" if line is not None else f"{path}"
    assert where in err, err
    for needle in needles:
        assert needle in err, err
    assert "listening" not in result.stdout + err


def test_malformed_toml_is_reported_with_its_line(tmp_path):
    text = "[broker]\nnode = \"a\"\n\n[limits\nmax_inflight = 3\n"
    path, result = run_with_config(tmp_path, text)
    assert result.returncode == 2, result
    assert "invalid TOML" in result.stderr, result.stderr
    assert str(path) in result.stderr
    assert re.search(r"\b4 \| \[limits$", result.stderr, re.M), result.stderr  # the line, shown


def test_missing_config_file(tmp_path):
    result = subprocess.run([BIN / "switchboard-broker", "--config", tmp_path / "absent.toml"],
                            capture_output=True, text=True, timeout=5)
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.toml'}: cannot open the file" in result.stderr


@pytest.mark.parametrize("flags,needle", [
    (["--listen", "127.0.0.1:notaport"], "--listen"),
    (["--threads", "-1"], "--threads: expected an integer from 0 to 256, got -1"),
    (["--threads", "257"], "--threads: expected an integer from 0 to 256, got 257"),
    (["--node", ""], "--node: expected a non-empty name"),
    (["--log-level", "loud"], "loud"),
    (["--no-such-flag"], "no-such-flag"),
])
def test_bad_flag(flags, needle):
    # Flags are checked like the keys they override, before anything starts. The address space
    # is capped so that a broker which took "--threads -1" for four billion threads fails fast
    # instead of eating the machine's memory.
    listen = [] if flags[0] == "--listen" else ["--listen", "127.0.0.1:0"]
    cap = 1 << 30
    result = subprocess.run(
        [BIN / "switchboard-broker", *flags, *listen], capture_output=True, text=True, timeout=5,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
    assert result.returncode == 2, result
    assert needle in result.stderr, result.stderr


def test_listen_address_in_use_fails_to_start(tmp_path):
    path, result = run_with_config(tmp_path, "")
    assert result.returncode == 1, result
    assert "127.0.0.1" in result.stderr, result.stderr


@both_versions
def test_example_config_is_valid(start_broker, clients, version):
    """conf/broker.toml, as shipped, starts (with the test's ports over its addresses)."""
    text = (ROOT / "conf" / "broker.toml").read_text()
    broker = start_broker(text)
    c = clients.wire(broker.port, version)
    assert c.connect("example").reason() == 0
