"""A minimal MQTT client at the byte level, for what library clients hide: packet identifiers and
DUP flags on redelivery, exact reason codes, malformed and out-of-order packets.

Packets are built by hand from the spec (MQTT 3.1.1 and 5.0 §2, §3) and parsed just far enough to
assert on. Properties are passed as a list of (identifier, value) with the value already typed by
the caller through the helpers below.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# Property identifiers (MQTT 5.0 §2.2.2.2).
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
WILL_DELAY_INTERVAL = 0x18
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27


def sub_options(qos, no_local=False, retain_as_published=False, retain_handling=0):
    """The Subscription Options byte (MQTT 5.0 §3.8.3.1; 3.1.1 uses the QoS bits only)."""
    return qos | (4 if no_local else 0) | (8 if retain_as_published else 0) | retain_handling << 4


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


# Property encoders: each returns the bytes of one property (identifier and value).
def p_byte(pid, v):
    return bytes([pid, v])


def p_u16(pid, v):
    return bytes([pid]) + struct.pack("!H", v)


def p_u32(pid, v):
    return bytes([pid]) + struct.pack("!I", v)


def p_varint(pid, v):
    return bytes([pid]) + varint(v)


def p_str(pid, v):
    return bytes([pid]) + string(v)


def p_pair(pid, k, v):
    return bytes([pid]) + string(k) + string(v)


def props(*encoded):
    body = b"".join(encoded)
    return varint(len(body)) + body


def persistent(version, expiry_s=300, extra_props=()):
    """CONNECT arguments for a session that outlives its connection: clean session 0 in 3.1.1;
    clean start 0 and a Session Expiry Interval in 5.0."""
    if version == 5:
        return {"clean": False, "properties": props(p_u32(SESSION_EXPIRY_INTERVAL, expiry_s),
                                                    *extra_props)}
    return {"clean": False}


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def connect_packet(client_id, version=5, clean=True, keepalive=60, properties=b"", will=None,
                   username=None, password=None):
    """will: dict(topic, payload, qos=0, retain=False, properties=b'')."""
    flags = 0x02 if clean else 0
    payload = string(client_id)
    if will:
        flags |= 0x04 | will.get("qos", 0) << 3 | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += will.get("properties", props())
        payload += string(will["topic"]) + string(will["payload"])
    if username is not None:
        flags |= 0x80
        payload += string(username)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    body = string("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += properties or props()
    return packet(CONNECT, 0, body + payload)


class Packet:
    def __init__(self, header, body, version):
        self.type = header >> 4
        self.flags = header & 0x0F
        self.body = body
        self.version = version

    def __repr__(self):
        return f"Packet(type={self.type}, flags={self.flags:#x}, body={self.body[:40]!r})"

    # PUBLISH fields.
    @property
    def qos(self):
        return (self.flags >> 1) & 3

    @property
    def dup(self):
        return bool(self.flags & 8)

    @property
    def retain(self):
        return bool(self.flags & 1)

    def publish(self):
        """(topic, packet_id, properties bytes, payload)."""
        n = struct.unpack("!H", self.body[:2])[0]
        topic = self.body[2:2 + n].decode()
        pos = 2 + n
        pid = None
        if self.qos:
            pid = struct.unpack("!H", self.body[pos:pos + 2])[0]
            pos += 2
        prop_bytes = b""
        if self.version == 5:
            length, used = read_varint(self.body, pos)
            prop_bytes = self.body[pos + used:pos + used + length]
            pos += used + length
        return topic, pid, prop_bytes, self.body[pos:]

    def message(self):
        """The PUBLISH as a Message record, with its properties parsed."""
        topic, pid, prop_bytes, payload = self.publish()
        return Message(topic, pid, parse_props(prop_bytes), payload, self.qos, self.dup,
                       self.retain)

    def packet_id(self):
        return struct.unpack("!H", self.body[:2])[0]

    @property
    def session_present(self):
        assert self.type == CONNACK
        return bool(self.body[0] & 1)

    def reason(self):
        """The reason code of a 5.0 ack, CONNACK, DISCONNECT (0 when left out)."""
        if self.type == CONNACK:
            return self.body[1]
        if self.type == DISCONNECT:
            return self.body[0] if self.body else 0
        return self.body[2] if len(self.body) > 2 else 0

    def suback_codes(self):
        """The reason codes of a SUBACK, or of a 5.0 UNSUBACK."""
        pos = 2
        if self.version == 5:
            length, used = read_varint(self.body, pos)
            pos += used + length
        return list(self.body[pos:])

    def properties(self):
        """Properties of a CONNACK / DISCONNECT / ack as a list of (id, raw bytes after id)."""
        if self.type == CONNACK:
            pos = 2
        elif self.type == DISCONNECT:
            pos = 1
        else:
            pos = 3
        if len(self.body) <= pos:
            return {}
        length, used = read_varint(self.body, pos)
        return parse_props(self.body[pos + used:pos + used + length])


def read_varint(data, pos):
    value, mult, used = 0, 1, 0
    while True:
        b = data[pos + used]
        used += 1
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, used


# Property identifiers and how their values are laid out, for parse_props.
_PROP_KIND = {0x01: "b", 0x02: "i", 0x03: "s", 0x08: "s", 0x09: "bin", 0x0B: "v", 0x11: "i",
              0x12: "s", 0x13: "h", 0x15: "s", 0x16: "bin", 0x17: "b", 0x18: "i", 0x19: "b",
              0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: "h", 0x22: "h", 0x23: "h", 0x24: "b",
              0x25: "b", 0x26: "pair", 0x27: "i", 0x28: "b", 0x29: "b", 0x2A: "b"}


def parse_props(data):
    """{id: value} (a list for user properties and subscription identifiers)."""
    out, pos = {}, 0
    while pos < len(data):
        pid = data[pos]
        pos += 1
        kind = _PROP_KIND[pid]
        if kind == "b":
            v, pos = data[pos], pos + 1
        elif kind == "h":
            v, pos = struct.unpack("!H", data[pos:pos + 2])[0], pos + 2
        elif kind == "i":
            v, pos = struct.unpack("!I", data[pos:pos + 4])[0], pos + 4
        elif kind == "v":
            v, used = read_varint(data, pos)
            pos += used
        elif kind in ("s", "bin"):
            n = struct.unpack("!H", data[pos:pos + 2])[0]
            v, pos = data[pos + 2:pos + 2 + n], pos + 2 + n
            if kind == "s":
                v = v.decode()
        else:
            n = struct.unpack("!H", data[pos:pos + 2])[0]
            k = data[pos + 2:pos + 2 + n].decode()
            pos += 2 + n
            n = struct.unpack("!H", data[pos:pos + 2])[0]
            v = (k, data[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
        if pid in (0x26, 0x0B):
            out.setdefault(pid, []).append(v)
        else:
            out[pid] = v
    return out


class Message:
    """A received PUBLISH: topic, packet_id (None for QoS 0), props {id: value}, payload (bytes),
    qos, dup, retain."""

    def __init__(self, topic, packet_id, props, payload, qos, dup, retain):
        self.topic, self.packet_id, self.props, self.payload = topic, packet_id, props, payload
        self.qos, self.dup, self.retain = qos, dup, retain

    def __repr__(self):
        return (f"Message({self.topic!r}, id={self.packet_id}, qos={self.qos}, dup={self.dup}, "
                f"retain={self.retain}, payload={self.payload[:40]!r}, props={self.props})")


class WireClient:
    def __init__(self, port, version=5, timeout=5.0):
        self.version = version
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def connect(self, client_id, **kwargs):
        """Sends CONNECT and returns the CONNACK packet."""
        self.send(connect_packet(client_id, version=self.version, **kwargs))
        return self.expect(CONNACK)

    def recv(self, timeout=None):
        """The next packet; None if the connection closed; raises socket.timeout on silence."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            p = self._parse()
            if p is not None:
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no packet")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def _parse(self):
        if len(self.buf) < 2:
            return None
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if len(self.buf) < i + length:
            return None
        p = Packet(self.buf[0], self.buf[i:i + length], self.version)
        self.buf = self.buf[i + length:]
        return p

    def expect(self, ptype, timeout=None):
        p = self.recv(timeout)
        assert p is not None, f"connection closed while waiting for packet type {ptype}"
        assert p.type == ptype, f"expected packet type {ptype}, got {p}"
        return p

    def expect_message(self, timeout=None):
        """The next packet, which must be a PUBLISH, as a Message."""
        return self.expect(PUBLISH, timeout).message()

    def expect_silence(self, window):
        """Asserts that no packet arrives and the connection stays open for `window` seconds.

        A deliberate wait: it proves that something does NOT happen, so keep `window` short."""
        try:
            p = self.recv(window)
        except socket.timeout:
            return
        raise AssertionError(f"expected no packet within {window}s, got "
                             f"{'a closed connection' if p is None else p}")

    def expect_closed(self, timeout=None):
        """Reads until the server closes; returns the packets received before (e.g. DISCONNECT)."""
        seen = []
        while True:
            p = self.recv(timeout)
            if p is None:
                return seen
            seen.append(p)

    def publish(self, topic, payload, qos=0, packet_id=None, retain=False, dup=False,
                properties=None):
        body = string(topic)
        if qos:
            body += struct.pack("!H", packet_id)
        if self.version == 5:
            body += properties if properties is not None else props()
        body += payload if isinstance(payload, bytes) else payload.encode()
        flags = (8 if dup else 0) | qos << 1 | (1 if retain else 0)
        self.send(packet(PUBLISH, flags, body))

    def subscribe(self, packet_id, *filters, properties=None):
        """filters: (filter, options byte) pairs. Returns the SUBACK."""
        body = struct.pack("!H", packet_id)
        if self.version == 5:
            body += properties if properties is not None else props()
        for f, options in filters:
            body += string(f) + bytes([options])
        self.send(packet(SUBSCRIBE, 2, body))
        return self.expect(SUBACK)

    def unsubscribe(self, packet_id, *filters, properties=None):
        """Returns the UNSUBACK."""
        body = struct.pack("!H", packet_id)
        if self.version == 5:
            body += properties if properties is not None else props()
        for f in filters:
            body += string(f)
        self.send(packet(UNSUBSCRIBE, 2, body))
        return self.expect(UNSUBACK)

    def ping(self):
        """Sends PINGREQ and waits for PINGRESP."""
        self.send(packet(PINGREQ, 0, b""))
        return self.expect(PINGRESP)

    def ack(self, ptype, packet_id, reason=None):
        body = struct.pack("!H", packet_id)
        if reason is not None:
            body += bytes([reason])
        self.send(packet(ptype, 2 if ptype == PUBREL else 0, body))

    def disconnect(self, reason=None, properties=b""):
        body = b"" if reason is None else bytes([reason]) + (properties or b"")
        self.send(packet(DISCONNECT, 0, body))
