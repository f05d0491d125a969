"""MQTT 5.0 only: flow control, topic aliases, maximum packet size, message expiry, No Local,
subscription identifiers, and the properties a broker passes through unchanged (MQTT 5.0 §3.3.2.3,
§3.8.3.1, §4.9)."""
import subprocess
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt_wire import (CONTENT_TYPE, CORRELATION_DATA, DISCONNECT, MAXIMUM_PACKET_SIZE,
                       MESSAGE_EXPIRY_INTERVAL, PAYLOAD_FORMAT_INDICATOR, PUBACK, PUBREC,
                       RECEIVE_MAXIMUM, RESPONSE_TOPIC, SUBSCRIPTION_IDENTIFIER,
                       TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM, USER_PROPERTY, p_byte, p_pair, p_str,
                       p_u16, p_u32, p_varint, persistent, props, sub_options, varint)


def connected(clients, broker, client_id, **connect_args):
    c = clients.wire(broker.port)
    ack = c.connect(client_id, **connect_args)
    assert ack.reason() == 0
    return c


def test_receive_maximum_limits_unacknowledged_publishes(broker, clients):
    sub = connected(clients, broker, "rm", properties=props(p_u16(RECEIVE_MAXIMUM, 2)))
    sub.subscribe(1, ("rm/t", 1))
    pub = connected(clients, broker, "pub")
    for i in range(3):
        pub.publish("rm/t", f"m{i}", qos=1, packet_id=i + 1)
        pub.expect(PUBACK)
    first = [sub.expect_message() for _ in range(2)]
    assert [m.payload for m in first] == [b"m0", b"m1"]
    sub.expect_silence(0.3)  # the third waits: two are unacknowledged
    sub.ack(PUBACK, first[0].packet_id)
    third = sub.expect_message()
    assert third.payload == b"m2"
    sub.expect_silence(0.2)


def test_receive_maximum_applies_to_resends_after_reconnect(broker, clients):
    # §4.9: the send quota starts afresh with each connection, resent PUBLISH packets included.
    sub = connected(clients, broker, "rm2", **persistent(5))
    sub.subscribe(1, ("rm2/t", 1))
    pub = connected(clients, broker, "pub")
    for i in range(4):
        pub.publish("rm2/t", f"m{i}", qos=1, packet_id=i + 1)
        pub.expect(PUBACK)
    first = [sub.expect_message() for _ in range(4)]
    sub.close()
    broker.wait_connections(1)

    sub = clients.wire(broker.port)
    ack = sub.connect("rm2", **persistent(5, extra_props=[p_u16(RECEIVE_MAXIMUM, 2)]))
    assert ack.session_present
    pub.publish("rm2/t", b"new", qos=1, packet_id=5)
    pub.expect(PUBACK)
    resent = [sub.expect_message() for _ in range(2)]
    assert [(m.packet_id, m.dup) for m in resent] == [(m.packet_id, True) for m in first[:2]]
    sub.expect_silence(0.3)  # two unacknowledged: the other resends wait
    got = resent
    while len(got) < 5:
        sub.ack(PUBACK, got[len(got) - 2].packet_id)  # ack the oldest: one slot opens
        got.append(sub.expect_message())
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2", b"m3", b"new"], \
        "resends in their original order, then the new message"
    assert [m.dup for m in got] == [True, True, True, True, False]
    assert [m.packet_id for m in got[:4]] == [m.packet_id for m in first]


def test_held_resend_acknowledged_early_is_not_sent(broker, clients):
    """A client that acknowledges, on its new connection, a message it got on the old one before
    the broker's resend reaches it: that resend is not sent any more."""
    sub = connected(clients, broker, "early", **persistent(5))
    sub.subscribe(1, ("early/t", 1))
    pub = connected(clients, broker, "pub")
    for i in range(2):
        pub.publish("early/t", f"m{i}", qos=1, packet_id=i + 1)
        pub.expect(PUBACK)
    first = [sub.expect_message() for _ in range(2)]
    sub.close()
    broker.wait_connections(1)
    sub = clients.wire(broker.port)
    sub.connect("early", **persistent(5, extra_props=[p_u16(RECEIVE_MAXIMUM, 1)]))
    assert sub.expect_message().packet_id == first[0].packet_id  # m1 is held: one at a time
    sub.ack(PUBACK, first[1].packet_id)  # m1, acknowledged early
    sub.ack(PUBACK, first[0].packet_id)
    pub.publish("early/t", b"next", qos=1, packet_id=3)
    pub.expect(PUBACK)
    m = sub.expect_message()
    assert (m.payload, m.dup) == (b"next", False), "m1 must not be resent once acknowledged"


def test_topic_alias_from_client(broker, clients):
    sub = connected(clients, broker, "sub")
    sub.subscribe(1, ("alias/#", 0))
    pub = connected(clients, broker, "pub")
    pub.publish("alias/long/topic", b"set", properties=props(p_u16(TOPIC_ALIAS, 1)))
    pub.publish("", b"used", properties=props(p_u16(TOPIC_ALIAS, 1)))
    pub.publish("alias/other", b"remapped", properties=props(p_u16(TOPIC_ALIAS, 1)))
    pub.publish("", b"used again", properties=props(p_u16(TOPIC_ALIAS, 1)))
    got = [(m.topic, m.payload) for m in (sub.expect_message() for _ in range(4))]
    assert got == [("alias/long/topic", b"set"), ("alias/long/topic", b"used"),
                   ("alias/other", b"remapped"), ("alias/other", b"used again")]
    sub.expect_silence(0.2)


def test_unknown_topic_alias_is_a_protocol_error(broker, clients):
    c = connected(clients, broker, "unknown-alias")
    c.publish("", b"x", properties=props(p_u16(TOPIC_ALIAS, 3)))
    assert [(p.type, p.reason()) for p in c.expect_closed()] == [(DISCONNECT, 0x82)]


def test_topic_aliases_do_not_outlive_the_connection(broker, clients):
    # §3.3.2.3.4: alias mappings belong to the network connection, not to the session.
    c = connected(clients, broker, "forgetful", **persistent(5))
    c.publish("al/t", b"x", properties=props(p_u16(TOPIC_ALIAS, 1)))
    c.disconnect()
    broker.wait_connections(0)
    c = clients.wire(broker.port)
    assert c.connect("forgetful", **persistent(5)).session_present
    c.publish("", b"x", properties=props(p_u16(TOPIC_ALIAS, 1)))
    assert [p.reason() for p in c.expect_closed()] == [0x82]


def test_topic_alias_above_maximum(start_broker, clients):
    broker = start_broker("[limits]\ntopic_alias_maximum = 4\n")
    c = clients.wire(broker.port)
    assert c.connect("too-high").properties().get(TOPIC_ALIAS_MAXIMUM) == 4
    c.publish("a/t", b"x", properties=props(p_u16(TOPIC_ALIAS, 5)))
    assert [(p.type, p.reason()) for p in c.expect_closed()] == [(DISCONNECT, 0x94)]


def test_topic_alias_when_none_are_allowed(start_broker, clients):
    broker = start_broker("[limits]\ntopic_alias_maximum = 0\n")
    c = clients.wire(broker.port)
    assert TOPIC_ALIAS_MAXIMUM not in c.connect("none").properties()
    c.publish("a/t", b"x", properties=props(p_u16(TOPIC_ALIAS, 1)))
    assert [p.reason() for p in c.expect_closed()] == [0x94]


def test_topic_aliases_to_client(broker, clients):
    sub = connected(clients, broker, "aliased", properties=props(p_u16(TOPIC_ALIAS_MAXIMUM, 2)))
    sub.subscribe(1, ("out/#", 0))
    pub = connected(clients, broker, "pub")
    for topic in ["out/one", "out/one", "out/two", "out/three", "out/two", "out/one"]:
        pub.publish(topic, topic.encode())
    got = [sub.expect_message() for _ in range(6)]
    seen = [(m.topic, m.props.get(TOPIC_ALIAS), m.payload.decode()) for m in got]
    assert seen == [
        ("out/one", 1, "out/one"),  # first use: topic and alias, to establish it
        ("", 1, "out/one"),         # then the alias alone
        ("out/two", 2, "out/two"),
        ("out/three", None, "out/three"),  # the client's maximum of 2 is used up
        ("", 2, "out/two"),
        ("", 1, "out/one"),
    ]


def test_topic_aliases_to_client_stay_within_the_brokers_own_maximum(start_broker, clients):
    """A client may allow 65,535 aliases, and the broker would keep as many topics per
    connection: it uses no more than its own topic_alias_maximum."""
    broker = start_broker("[limits]\ntopic_alias_maximum = 2\n")
    sub = connected(clients, broker, "greedy", properties=props(p_u16(TOPIC_ALIAS_MAXIMUM, 65535)))
    sub.subscribe(1, ("cap/#", 0))
    pub = connected(clients, broker, "pub")
    for topic in ["cap/one", "cap/two", "cap/three", "cap/three"]:
        pub.publish(topic, topic.encode())
    got = [sub.expect_message() for _ in range(4)]
    assert [(m.topic, m.props.get(TOPIC_ALIAS)) for m in got] == [
        ("cap/one", 1), ("cap/two", 2), ("cap/three", None), ("cap/three", None)]


def test_no_topic_alias_to_client_that_did_not_ask(broker, clients):
    sub = connected(clients, broker, "plain")
    sub.subscribe(1, ("na/#", 0))
    pub = connected(clients, broker, "pub")
    for _ in range(2):
        pub.publish("na/t", b"x")
    for _ in range(2):
        m = sub.expect_message()
        assert (m.topic, m.props.get(TOPIC_ALIAS)) == ("na/t", None)


def test_client_maximum_packet_size(broker, clients):
    # §3.1.2.11.4: a packet larger than the client's maximum is not sent, as if delivered.
    sub = connected(clients, broker, "small",
                    properties=props(p_u32(MAXIMUM_PACKET_SIZE, 100), p_u16(RECEIVE_MAXIMUM, 1)))
    sub.subscribe(1, ("mps/t", 1))
    pub = connected(clients, broker, "pub")
    pub.publish("mps/t", b"x" * 200, qos=1, packet_id=1)
    pub.expect(PUBACK)
    pub.publish("mps/t", b"small", qos=1, packet_id=2)
    pub.expect(PUBACK)
    m = sub.expect_message()
    # With a Receive Maximum of 1, this arriving also shows the big one left no slot in flight.
    assert m.payload == b"small"
    sub.ack(PUBACK, m.packet_id)
    sub.expect_silence(0.2)
    assert broker.metric('sb_broker_messages_dropped_total{reason="too_large"}') == 1


def test_topic_alias_never_takes_a_packet_over_the_client_maximum(broker, clients):
    sub = connected(clients, broker, "tight", properties=props(p_u32(MAXIMUM_PACKET_SIZE, 60),
                                                               p_u16(TOPIC_ALIAS_MAXIMUM, 5)))
    sub.subscribe(1, ("ta/x", 0))
    pub = connected(clients, broker, "pub")
    pub.publish("ta/x", b"y" * 51)  # exactly 60 bytes as a PUBLISH to the client, without alias
    p = sub.recv()
    size = 1 + len(varint(len(p.body))) + len(p.body)
    m = p.message()
    assert size <= 60, f"a {size} byte packet to a client whose maximum is 60"
    assert (m.topic, m.payload, TOPIC_ALIAS in m.props) == ("ta/x", b"y" * 51, False)
    pub.publish("ta/x", b"short")  # room for the alias now: established with this one
    m = sub.expect_message()
    assert (m.topic, m.props.get(TOPIC_ALIAS)) == ("ta/x", 1)
    pub.publish("ta/x", b"y" * 51)  # and used: the empty topic makes this one fit too
    m = sub.expect_message()
    assert (m.topic, m.props.get(TOPIC_ALIAS), len(m.payload)) == ("", 1, 51)


def test_message_expiry(broker, clients):
    sub = connected(clients, broker, "exp", **persistent(5))
    sub.subscribe(1, ("me/#", 1))
    sub.disconnect()
    broker.wait_connections(0)
    pub = connected(clients, broker, "pub")
    for pid, (topic, expiry) in enumerate([("me/short", 1), ("me/long", 10), ("me/never", None)],
                                          start=1):
        properties = props(p_u32(MESSAGE_EXPIRY_INTERVAL, expiry)) if expiry else props()
        pub.publish(topic, topic.encode(), qos=1, packet_id=pid, properties=properties)
        pub.expect(PUBACK)
    # Let the 1 s message expire while queued: there is no event to wait for, only time; the check
    # below is that it is then NOT delivered.
    time.sleep(2)
    sub = clients.wire(broker.port)
    assert sub.connect("exp", **persistent(5)).session_present
    got = [sub.expect_message() for _ in range(2)]
    assert [m.topic for m in got] == ["me/long", "me/never"], "the expired one is dropped"
    # §3.3.2.3.3: the interval sent is what is left of it.
    left = got[0].props.get(MESSAGE_EXPIRY_INTERVAL)
    assert left is not None and 1 <= left <= 8, f"Message Expiry Interval {left} after 2 s of 10"
    assert MESSAGE_EXPIRY_INTERVAL not in got[1].props
    for m in got:
        sub.ack(PUBACK, m.packet_id)
    sub.expect_silence(0.2)
    assert broker.metric('sb_broker_messages_dropped_total{reason="expired"}') == 1, \
        "a message that expired in the queue must be counted as dropped"


def test_message_expiry_on_live_delivery(broker, clients):
    sub = connected(clients, broker, "live")
    sub.subscribe(1, ("ml/t", 0))
    pub = connected(clients, broker, "pub")
    pub.publish("ml/t", b"x", properties=props(p_u32(MESSAGE_EXPIRY_INTERVAL, 30)))
    m = sub.expect_message()
    assert m.props.get(MESSAGE_EXPIRY_INTERVAL) in (29, 30)


def test_message_expiry_of_zero_is_no_expiry(broker, clients):
    # Read as mosquitto reads it: delivered live, retained, kept for an offline session.
    sub = connected(clients, broker, "zero")
    sub.subscribe(1, ("mz/t", 1))
    pub = connected(clients, broker, "pub")
    pub.publish("mz/t", b"x", qos=1, packet_id=1, retain=True,
                properties=props(p_u32(MESSAGE_EXPIRY_INTERVAL, 0)))
    assert pub.expect(PUBACK).reason() == 0
    assert sub.expect_message().payload == b"x"
    late = connected(clients, broker, "late")
    late.subscribe(1, ("mz/t", 0))
    assert late.expect_message().retain


def test_no_local(broker, clients):
    me = connected(clients, broker, "me")
    me.subscribe(1, ("nl/t", sub_options(0, no_local=True)))
    echo = connected(clients, broker, "echo")
    echo.subscribe(1, ("nl/t", 0))
    me.publish("nl/t", b"from me")
    assert echo.expect_message().payload == b"from me"  # others still get it
    me.expect_silence(0.2)  # but not the publisher
    echo.publish("nl/t", b"from echo")
    assert me.expect_message().payload == b"from echo"
    assert echo.expect_message().payload == b"from echo"  # no No Local: its own comes back


def test_subscription_identifiers(broker, clients):
    sub = connected(clients, broker, "ids")
    sub.subscribe(1, ("si/+", 0), properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 300)))
    sub.subscribe(2, ("plain/t", 0))
    pub = connected(clients, broker, "pub")
    pub.publish("si/a", b"x")
    assert sub.expect_message().props.get(SUBSCRIPTION_IDENTIFIER) == [300]
    pub.publish("plain/t", b"x")
    assert SUBSCRIPTION_IDENTIFIER not in sub.expect_message().props
    # A new SUBSCRIBE to the same filter replaces the identifier.
    sub.subscribe(3, ("si/+", 0), properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 7)))
    pub.publish("si/b", b"x")
    assert sub.expect_message().props.get(SUBSCRIPTION_IDENTIFIER) == [7]
    # Retained messages carry it too.
    pub.publish("si/r", b"kept", qos=1, packet_id=1, retain=True)
    pub.expect(PUBACK)
    assert sub.expect_message().props.get(SUBSCRIPTION_IDENTIFIER) == [7]
    sub.subscribe(4, ("si/r", 0), properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 9)))
    m = sub.expect_message()
    assert (m.retain, m.props.get(SUBSCRIPTION_IDENTIFIER)) == (True, [9])


def test_subscription_identifier_from_client_in_publish_is_a_protocol_error(broker, clients):
    c = connected(clients, broker, "bad-sid")
    c.publish("x/t", b"x", properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 1)))
    assert [p.reason() for p in c.expect_closed()] == [0x82]


def test_properties_pass_through_unchanged_request_response(broker, clients):
    """paho-mqtt on both ends: a request with Response Topic, Correlation Data, User Properties,
    Content Type and Payload Format Indicator, answered on the response topic."""
    responder = clients.paho(broker.port, "responder", 5)
    responder.subscribe("svc/request", 1)
    requester = clients.paho(broker.port, "requester", 5)
    requester.subscribe("svc/reply/requester", 1)

    request = Properties(PacketTypes.PUBLISH)
    request.ResponseTopic = "svc/reply/requester"
    request.CorrelationData = b"\x00\x01corr"
    request.UserProperty = [("b", "2"), ("a", "1"), ("a", "again")]
    request.ContentType = "application/json"
    request.PayloadFormatIndicator = 1
    requester.publish("svc/request", b'{"q": 1}', qos=1, properties=request)

    [m] = responder.wait_messages(1)
    p = m.properties
    assert m.payload == b'{"q": 1}'
    assert p.ResponseTopic == "svc/reply/requester"
    assert p.CorrelationData == b"\x00\x01corr"
    assert p.UserProperty == [("b", "2"), ("a", "1"), ("a", "again")], "order and repeats kept"
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1

    reply = Properties(PacketTypes.PUBLISH)
    reply.CorrelationData = p.CorrelationData
    responder.publish(p.ResponseTopic, b'{"a": 2}', qos=1, properties=reply)
    [r] = requester.wait_messages(1)
    assert (r.topic, r.payload, r.properties.CorrelationData) == \
        ("svc/reply/requester", b'{"a": 2}', b"\x00\x01corr")


def test_properties_pass_through_on_the_wire(broker, clients):
    sub = connected(clients, broker, "sub")
    sub.subscribe(1, ("pt/t", 1))
    pub = connected(clients, broker, "pub")
    sent = props(p_byte(PAYLOAD_FORMAT_INDICATOR, 1), p_str(CONTENT_TYPE, "text/plain"),
                 p_str(RESPONSE_TOPIC, "pt/reply"), p_str(CORRELATION_DATA, b"\xff\x00"),
                 p_pair(USER_PROPERTY, "k", "v1"), p_pair(USER_PROPERTY, "k", "v2"))
    pub.publish("pt/t", "héllo", qos=1, packet_id=1, properties=sent)
    pub.expect(PUBACK)
    m = sub.expect_message()
    assert m.payload == "héllo".encode()
    assert m.props == {PAYLOAD_FORMAT_INDICATOR: 1, CONTENT_TYPE: "text/plain",
                       RESPONSE_TOPIC: "pt/reply", CORRELATION_DATA: b"\xff\x00",
                       USER_PROPERTY: [("k", "v1"), ("k", "v2")]}


def test_payload_format_indicator_with_invalid_utf8(broker, clients):
    sub = connected(clients, broker, "sub")
    sub.subscribe(1, ("pf/t", 0))
    pub = connected(clients, broker, "pub")
    pfi = props(p_byte(PAYLOAD_FORMAT_INDICATOR, 1))
    pub.publish("pf/t", b"\xff\xfe not utf-8", qos=1, packet_id=1, properties=pfi)
    ack = pub.expect(PUBACK)
    assert (ack.packet_id(), ack.reason()) == (1, 0x99)  # Payload format invalid
    pub.publish("pf/t", b"\xc3\x28", qos=2, packet_id=2, properties=pfi)
    rec = pub.expect(PUBREC)
    assert (rec.packet_id(), rec.reason()) == (2, 0x99)
    # Without the indicator, the same bytes are just bytes.
    pub.publish("pf/t", b"\xff\xfe", qos=1, packet_id=3)
    assert pub.expect(PUBACK).reason() == 0
    assert sub.expect_message().payload == b"\xff\xfe"
    sub.expect_silence(0.2)  # the invalid ones were not delivered
    assert broker.metric('sb_broker_messages_dropped_total{reason="payload_format_invalid"}') == 2


def test_paho_subscribe_options(broker, clients):
    """No Local and Retain As Published through paho's SubscribeOptions."""
    c = clients.paho(broker.port, "opts", 5)
    assert c.subscribe("po/t", options=SubscribeOptions(qos=1, noLocal=True,
                                                        retainAsPublished=True)) == [1]
    assert c.subscribe("po/canary", 1) == [1]
    other = clients.paho(broker.port, "other", 5)
    c.publish("po/t", b"mine", qos=1)
    c.publish("po/canary", b"canary", qos=1)
    other.publish("po/t", b"theirs", qos=1, retain=True)
    # "mine" would arrive before the canary (same publisher): the first two are the other two.
    got = {m.payload: m.retain for m in c.wait_messages(2)}
    assert got == {b"theirs": True, b"canary": False}


def test_properties_from_mosquitto_pub(broker, clients):
    sub = connected(clients, broker, "sub")
    sub.subscribe(1, ("mp/t", 1))
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5",
                    "-t", "mp/t", "-m", "hi", "-q", "1",
                    "-D", "publish", "user-property", "origin", "mosquitto",
                    "-D", "publish", "content-type", "text/x-greeting",
                    "-D", "publish", "response-topic", "mp/reply",
                    "-D", "publish", "message-expiry-interval", "120"],
                   check=True, timeout=5)
    m = sub.expect_message()
    assert m.payload == b"hi"
    assert m.props[USER_PROPERTY] == [("origin", "mosquitto")]
    assert m.props[CONTENT_TYPE] == "text/x-greeting"
    assert m.props[RESPONSE_TOPIC] == "mp/reply"
    assert m.props[MESSAGE_EXPIRY_INTERVAL] in (119, 120)
