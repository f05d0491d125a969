"""Malformed and hostile input: each is refused the way the spec says (closed without an answer
before CONNECT, DISCONNECT with the reason in 5.0 after it, MQTT 5.0 §4.13; 3.1.1 §4.8), and after
each one the broker still serves a normal client."""
import socket
import struct

import pytest

from conftest import assert_serves, both_versions
from mqtt_wire import (CONNACK, CONNECT, DISCONNECT, PINGREQ, PUBLISH, SUBSCRIBE, connect_packet,
                       packet, props, string)


def raw(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=3)
    return s


def read_until_closed(s):
    """All bytes the broker sends until it closes the socket."""
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("first", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(b"\x00\x00", id="reserved-type-0"),
    pytest.param(packet(PINGREQ, 0, b""), id="pingreq-first"),
    pytest.param(packet(PUBLISH, 0, string("a/b") + b"x"), id="publish-first"),
    pytest.param(b"\x10\xff\xff\xff\xff\x7f", id="remaining-length-5-bytes"),
    pytest.param(packet(CONNECT, 0, string("MQTT") + bytes([4, 0x03, 0, 60]) + string("c")),
                 id="connect-311-reserved-flag"),
    pytest.param(packet(CONNECT, 0, string("MQTT") + bytes([4, 0x02, 0, 60]) + string("c")
                        + b"junk"), id="connect-trailing-bytes"),
    pytest.param(packet(CONNECT, 1, string("MQTT") + bytes([4, 0x02, 0, 60]) + string("c")),
                 id="connect-bad-header-flags"),
])
def test_bad_first_packet_is_closed_without_connack(broker, first):
    s = raw(broker)
    s.sendall(first)
    assert read_until_closed(s) == b"", "no CONNACK for a first packet that is no valid CONNECT"
    s.close()
    assert broker.metric('sb_broker_connections_rejected_total{reason="malformed_connect"}') == 1
    assert_serves(broker)


def test_unsupported_protocol_level_gets_return_code_1(broker):
    s = raw(broker)
    s.sendall(packet(CONNECT, 0, string("MQTT") + bytes([6, 0x02, 0, 60]) + string("new")))
    # 3.1.1 §3.1.2.2: CONNACK return code 1 (unacceptable protocol version), then close.
    assert read_until_closed(s) == b"\x20\x02\x00\x01"
    s.close()
    assert_serves(broker)


def test_malformed_5_0_connect_gets_connack_with_reason(broker):
    # §4.13: a 5.0 server may answer an invalid CONNECT with a CONNACK that says why.
    s = raw(broker)
    # Will QoS 3 is malformed (§3.1.2.6).
    s.sendall(packet(CONNECT, 0, string("MQTT") + bytes([5, 0x02 | 0x04 | 0x18, 0, 60]) + props()
                     + string("c") + props() + string("w") + string("x")))
    data = read_until_closed(s)
    assert data[:1] == b"\x20" and data[3] == 0x81, data  # CONNACK, Malformed Packet
    s.close()
    assert_serves(broker)


@both_versions
def test_remaining_length_of_five_bytes_after_connect(broker, clients, version):
    c = clients.wire(broker.port, version)
    c.connect("rl5")
    c.send(b"\x30\xff\xff\xff\xff\x01")
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x81)] if version == 5 else [])
    assert_serves(broker, version)


@both_versions
def test_invalid_utf8_in_topic(broker, clients, version):
    c = clients.wire(broker.port, version)
    c.connect("utf8")
    c.publish(b"bad/\xc0\xaf", b"x")  # an overlong encoding of '/'
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x81)] if version == 5 else [])
    assert_serves(broker, version)


@both_versions
def test_nul_character_in_topic(broker, clients, version):
    c = clients.wire(broker.port, version)
    c.connect("nul")
    c.publish(b"bad/\x00", b"x")
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x81)] if version == 5 else [])


@both_versions
@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "#"])
def test_publish_to_wildcard_topic(broker, clients, version, topic):
    sub = clients.wire(broker.port, version)
    sub.connect("sub")
    sub.subscribe(1, ("#", 0))
    c = clients.wire(broker.port, version)
    c.connect("wild")
    c.publish(topic, b"x")
    seen = c.expect_closed()
    # 0x90 Topic Name invalid (§3.3.2.1).
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x90)] if version == 5 else [])
    sub.expect_silence(0.2)  # and nothing was routed
    assert_serves(broker, version)


@both_versions
def test_packet_identifier_zero(broker, clients, version):
    c = clients.wire(broker.port, version)
    c.connect("pid0")
    c.publish("a/b", b"x", qos=1, packet_id=0)
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x82)] if version == 5 else [])
    assert_serves(broker, version)


@both_versions
def test_second_connect_closes_the_connection(broker, clients, version):
    c = clients.wire(broker.port, version)
    c.connect("twice")
    c.send(connect_packet("twice", version=version))
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == ([(DISCONNECT, 0x82)] if version == 5 else [])
    assert_serves(broker, version)


def test_second_connect_of_an_unknown_level_is_a_protocol_error(broker, clients):
    # 0x84 (unsupported protocol version) is for CONNACK only; a DISCONNECT says 0x82.
    c = clients.wire(broker.port)
    c.connect("twice-odd")
    c.send(packet(1, 0, string("MQTT") + bytes([7, 0x02, 0, 10]) + string("c")))
    assert [(p.type, p.reason()) for p in c.expect_closed()] == [(DISCONNECT, 0x82)]


@both_versions
def test_qos3_and_bad_flags(broker, clients, version):
    for bad in [packet(PUBLISH, 0x6, string("a") + b"\x00\x01"),  # QoS 3
                packet(SUBSCRIBE, 0, b"\x00\x01" + (props() if version == 5 else b"")
                       + string("a") + b"\x00"),  # SUBSCRIBE flags must be 0010
                packet(PUBLISH, 0x8, string("a")),  # DUP on QoS 0
                packet(CONNACK, 0, b"\x00\x00")]:  # a packet only servers send
        c = clients.wire(broker.port, version)
        c.connect("flags")
        c.send(bad)
        seen = c.expect_closed()
        if version == 5:
            assert len(seen) == 1 and seen[0].type == DISCONNECT, (bad, seen)
            assert seen[0].reason() in (0x81, 0x82), (bad, seen)
        else:
            assert seen == [], bad
    assert_serves(broker, version)


def test_subscribe_without_filters(broker, clients):
    c = clients.wire(broker.port)
    c.connect("empty-sub")
    c.send(packet(SUBSCRIBE, 2, b"\x00\x01" + props()))
    assert [p.reason() for p in c.expect_closed()] == [0x82]


def test_truncated_and_split_packets_are_reassembled(broker, clients):
    """Not hostile, just slow: a packet arriving a byte at a time is still one packet."""
    sub = clients.wire(broker.port)
    sub.connect("sub")
    sub.subscribe(1, ("slow/t", 0))
    c = clients.wire(broker.port)
    c.connect("dribble")
    data = packet(PUBLISH, 0, string("slow/t") + props() + b"byte by byte")
    for i in range(len(data)):
        c.send(data[i:i + 1])
    assert sub.expect_message().payload == b"byte by byte"


def test_many_packets_in_one_write(broker, clients):
    sub = clients.wire(broker.port)
    sub.connect("sub")
    sub.subscribe(1, ("burst/t", 0))
    c = clients.wire(broker.port)
    # CONNECT and 50 PUBLISH in a single segment: the handshake hands the rest to the connection.
    c.send(connect_packet("burst") + b"".join(
        packet(PUBLISH, 0, string("burst/t") + props() + struct.pack("!H", i)) for i in range(50)))
    c.expect(CONNACK)
    got = [struct.unpack("!H", sub.expect_message().payload)[0] for _ in range(50)]
    assert got == list(range(50))


def test_abrupt_resets(broker):
    """Sockets reset in the middle of a CONNECT, after CONNECT, and mid-packet."""
    variants = [connect_packet("reset1")[:5], connect_packet("reset2"),
                connect_packet("reset3") + packet(PUBLISH, 0, string("a") + b"x" * 100)[:20]]
    for data in variants:
        s = raw(broker)
        s.sendall(data)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
    broker.wait_connections(0)
    assert_serves(broker)
