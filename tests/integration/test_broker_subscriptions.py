"""Subscribing: overlapping filters, unsubscribing, invalid filters and shared subscriptions
(MQTT 5.0 §3.3.4, §3.8, §3.10, §4.7, §4.8.2; 3.1.1 §3.8, §3.10, §4.7)."""
import collections

import pytest

from conftest import both_versions
from mqtt_wire import (PUBACK, PUBCOMP, PUBREC, PUBREL, SUBACK, SUBSCRIBE, SUBSCRIPTION_IDENTIFIER,
                       UNSUBACK, UNSUBSCRIBE, packet, p_varint, persistent, props, string,
                       sub_options)


def publisher(clients, broker, version=5):
    p = clients.wire(broker.port, version)
    p.connect("pub")
    return p


def publish_acked(pub, topic, payload, qos, packet_id):
    pub.publish(topic, payload, qos=qos, packet_id=packet_id if qos else None)
    if qos == 1:
        pub.expect(PUBACK)
    elif qos == 2:
        pub.expect(PUBREC)
        pub.ack(PUBREL, packet_id)
        pub.expect(PUBCOMP)


@both_versions
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos(broker, clients, version,
                                                                       pub_qos):
    sub = clients.wire(broker.port, version)
    sub.connect("overlap")
    if version == 5:
        # One SUBSCRIBE per filter, each with its own Subscription Identifier.
        sub.subscribe(1, ("a/#", 1), properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 11)))
        sub.subscribe(2, ("a/b", 2), properties=props(p_varint(SUBSCRIPTION_IDENTIFIER, 22)))
    else:
        assert sub.subscribe(1, ("a/#", 1), ("a/b", 2)).suback_codes() == [1, 2]
    pub = publisher(clients, broker, version)
    publish_acked(pub, "a/b", b"once", pub_qos, 5)
    m = sub.expect_message()
    # §3.3.4: one copy at the maximum QoS of the matching subscriptions (capped by the message's).
    assert (m.topic, m.payload, m.qos) == ("a/b", b"once", pub_qos)
    if version == 5:
        assert sorted(m.props.get(SUBSCRIPTION_IDENTIFIER, [])) == [11, 22]
    if pub_qos == 1:
        sub.ack(PUBACK, m.packet_id)
    elif pub_qos == 2:
        sub.ack(PUBREC, m.packet_id)
        sub.expect(PUBREL)
        sub.ack(PUBCOMP, m.packet_id)
    sub.expect_silence(0.2)  # no second copy
    # A topic only "a/#" matches comes at that subscription's QoS, with its identifier only.
    publish_acked(pub, "a/c", b"other", 2, 6)
    m = sub.expect_message()
    assert (m.topic, m.qos) == ("a/c", 1)
    if version == 5:
        assert m.props.get(SUBSCRIPTION_IDENTIFIER) == [11]


@both_versions
def test_unsubscribe_stops_delivery(broker, clients, version):
    sub = clients.wire(broker.port, version)
    sub.connect("unsub")
    sub.subscribe(1, ("u/t", 0), ("u/other", 0))
    pub = publisher(clients, broker, version)
    pub.publish("u/t", b"before")
    assert sub.expect_message().payload == b"before"
    ack = sub.unsubscribe(2, "u/t", "u/never")
    assert ack.packet_id() == 2
    if version == 5:
        # 0x00 Success, 0x11 No subscription existed (§3.11.3).
        assert ack.suback_codes() == [0x00, 0x11]
    else:
        assert ack.body == b"\x00\x02", "a 3.1.1 UNSUBACK has the packet identifier only"
    pub.publish("u/t", b"after")
    pub.publish("u/other", b"still subscribed")
    assert sub.expect_message().payload == b"still subscribed"
    sub.expect_silence(0.2)  # nothing for u/t after its UNSUBACK
    assert broker.metric("sb_broker_subscriptions") == 1


@both_versions
def test_unsubscribe_with_paho(broker, clients, version):
    sub = clients.paho(broker.port, "paho-unsub", version)
    sub.subscribe("pu/t", 1)
    codes = sub.unsubscribe("pu/t")
    if version == 5:
        assert codes == [0]
    pub = clients.paho(broker.port, "paho-pub", version)
    pub.publish("pu/t", b"nobody", qos=1)
    sub.subscribe("pu/canary", 1)
    pub.publish("pu/canary", b"canary", qos=1)
    # The canary, sent after, arrives; the message to the dropped subscription never did.
    assert [m.payload for m in sub.wait_messages(1)] == [b"canary"]


@both_versions
def test_invalid_filters_are_refused_one_by_one(start_broker, clients, version):
    # Deeper than max_filter_levels counts as invalid; a shared filter's levels are its filter's.
    broker = start_broker("[limits]\nmax_filter_levels = 4\n")
    sub = clients.wire(broker.port, version)
    sub.connect("bad-filters")
    codes = sub.subscribe(1, ("ok/+", 1), ("a/#/b", 1), ("a+/b", 0), ("$share/g/ok2", 0),
                          ("$share/g+/x", 0), ("a/b/c/d", 0), ("a/b/c/d/e", 0),
                          ("$share/g/a/+/c/#", 0), ("$share/g/a/b/c/d/#", 0)).suback_codes()
    bad = 0x8F if version == 5 else 0x80  # Topic Filter invalid / Failure
    assert codes == [1, bad, bad, 0, bad, 0, bad, 0, bad]
    assert broker.metric("sb_broker_subscriptions") == 4


@both_versions
def test_a_session_has_at_most_max_subscriptions(start_broker, clients, version):
    broker = start_broker("[limits]\nmax_subscriptions = 2\n")
    sub = clients.wire(broker.port, version)
    sub.connect("many")
    quota = 0x97 if version == 5 else 0x80  # Quota exceeded / Failure
    assert sub.subscribe(1, ("a", 0), ("b", 1), ("c", 0)).suback_codes() == [0, 1, quota]
    # A filter it has is replaced, not counted again; one it gave up makes room.
    assert sub.subscribe(2, ("a", 1)).suback_codes() == [1]
    sub.unsubscribe(3, "b")
    assert sub.subscribe(4, ("c", 0), ("d", 0)).suback_codes() == [0, quota]
    assert broker.metric("sb_broker_subscriptions") == 2
    pub = publisher(clients, broker, version)
    pub.publish("c", b"to c")
    assert sub.expect_message().payload == b"to c"


@both_versions
def test_wildcard_matching(broker, clients, version):
    sub = clients.wire(broker.port, version)
    sub.connect("wild")
    sub.subscribe(1, ("w/+/c", 0), ("w/x/#", 0))
    pub = publisher(clients, broker, version)
    for topic in ["w/b/c", "w/b/c/d", "w/x", "w/x/y/z", "w//c", "w/c"]:
        pub.publish(topic, topic.encode())
    got = [sub.expect_message().topic for _ in range(4)]
    # "w/x/#" matches its parent "w/x" (§4.7.1.2); "+" matches an empty level.
    assert got == ["w/b/c", "w/x", "w/x/y/z", "w//c"]
    sub.expect_silence(0.2)


def test_shared_subscription_round_robin(broker, clients):
    members = []
    for i in range(3):
        m = clients.wire(broker.port)
        m.connect(f"member{i}")
        assert m.subscribe(1, ("$share/g/jobs/+", 1)).suback_codes() == [1]
        members.append(m)
    everyone = clients.wire(broker.port)
    everyone.connect("everyone")
    everyone.subscribe(1, ("jobs/+", 1))

    pub = clients.paho(broker.port, "boss", 5)
    for i in range(30):
        pub.publish(f"jobs/{i % 4}", f"job{i}".encode(), qos=1)

    all_jobs = []
    for _ in range(30):
        m = everyone.expect_message()
        everyone.ack(PUBACK, m.packet_id)
        all_jobs.append(m.payload)
    assert all_jobs == [f"job{i}".encode() for i in range(30)], "the non-shared one gets all"

    per_member = collections.Counter()
    delivered = collections.Counter()
    for idx, member in enumerate(members):
        while per_member[idx] < 10:
            m = member.expect_message()
            member.ack(PUBACK, m.packet_id)
            per_member[idx] += 1
            delivered[m.payload] += 1
    for member in members:
        member.expect_silence(0.1)  # ten each, and no more
    assert delivered == collections.Counter(all_jobs), "each job to exactly one member"


def test_shared_subscriptions_with_paho(broker, clients):
    group = [clients.paho(broker.port, f"worker{i}", 5) for i in range(2)]
    for w in group:
        assert w.subscribe("$share/workers/tasks", 1) == [1]
    pub = clients.paho(broker.port, "producer", 5)
    for i in range(10):
        pub.publish("tasks", f"t{i}".encode(), qos=1)
    for w in group:
        w.wait_messages(5)
    got = sorted(m.payload for w in group for m in w.messages)
    assert got == sorted(f"t{i}".encode() for i in range(10))
    assert [len(w.messages) for w in group] == [5, 5]


def test_shared_subscription_gets_no_retained_messages(broker, clients):
    # §4.8.2: retained messages are not sent for a shared subscription.
    pub = publisher(clients, broker)
    pub.publish("sr/t", b"kept", qos=1, packet_id=1, retain=True)
    pub.expect(PUBACK)
    member = clients.wire(broker.port)
    member.connect("member")
    assert member.subscribe(1, ("$share/g/sr/t", 1)).suback_codes() == [1]
    member.expect_silence(0.2)
    # The subscription is in place: what is published now reaches it.
    pub.publish("sr/t", b"live", qos=1, packet_id=2)
    pub.expect(PUBACK)
    assert member.expect_message().payload == b"live"


def test_no_local_on_a_malformed_shared_filter_is_an_invalid_filter(broker, clients):
    # "$share//x" has no group: not a shared subscription but an invalid filter (0x8F in its
    # SUBACK), whatever its options; No Local is a protocol error on a shared subscription only.
    c = clients.wire(broker.port)
    c.connect("nl-malformed")
    body = (b"\x00\x01" + props() + string("$share//x") + bytes([sub_options(0, no_local=True)])
            + string("nl/fine") + bytes([sub_options(0)]))
    c.send(packet(SUBSCRIBE, 2, body))
    assert c.expect(SUBACK).suback_codes() == [0x8F, 0]
    assert c.ping()


def test_no_local_on_shared_subscription_is_a_protocol_error(broker, clients):
    c = clients.wire(broker.port)
    c.connect("nl-shared", **persistent(5))
    # A valid filter first: the whole packet is refused, so it is not saved either.
    body = (b"\x00\x01" + props() + string("nl/ok") + bytes([sub_options(1)])
            + string("$share/g/x") + bytes([sub_options(0, no_local=True)]))
    c.send(packet(SUBSCRIBE, 2, body))
    assert [p.reason() for p in c.expect_closed()] == [0x82]
    assert broker.metric("sb_broker_subscriptions") == 0
    again = clients.wire(broker.port)
    assert again.connect("nl-shared", **persistent(5)).session_present
    assert again.subscribe(1, ("nl/ok", sub_options(1, retain_handling=1))).suback_codes() == [1]
    assert broker.metric("sb_broker_subscriptions") == 1


@both_versions
def test_subscribing_again_replaces_the_subscription(broker, clients, version):
    sub = clients.wire(broker.port, version)
    sub.connect("again")
    sub.subscribe(1, ("r/t", 0))
    assert sub.subscribe(2, ("r/t", 1)).suback_codes() == [1]
    assert broker.metric("sb_broker_subscriptions") == 1
    pub = publisher(clients, broker, version)
    publish_acked(pub, "r/t", b"x", 1, 1)
    m = sub.expect_message()
    assert m.qos == 1, "the second SUBSCRIBE's QoS applies"
    sub.ack(PUBACK, m.packet_id)
    sub.expect_silence(0.2)  # one subscription, one copy


def test_unsubscribe_from_shared_subscription(broker, clients):
    sub = clients.wire(broker.port)
    sub.connect("leaver")
    sub.subscribe(1, ("$share/g/us/t", 0))
    assert sub.unsubscribe(2, "$share/g/us/t").suback_codes() == [0]
    assert broker.metric("sb_broker_subscriptions") == 0
    pub = publisher(clients, broker)
    pub.publish("us/t", b"x")
    sub.expect_silence(0.2)


def test_shared_group_member_that_leaves_gets_no_more(broker, clients):
    stay = clients.wire(broker.port)
    stay.connect("stay")
    stay.subscribe(1, ("$share/g/sl/t", 1))
    leave = clients.wire(broker.port)
    leave.connect("leave")
    leave.subscribe(1, ("$share/g/sl/t", 1))
    leave.disconnect()
    broker.wait_metric("sb_broker_subscriptions", 1)
    pub = publisher(clients, broker)
    for i in range(4):
        publish_acked(pub, "sl/t", f"{i}".encode(), 1, i + 1)
    got = []
    for _ in range(4):
        m = stay.expect_message()
        stay.ack(PUBACK, m.packet_id)
        got.append(m.payload)
    assert got == [b"0", b"1", b"2", b"3"], "the remaining member gets every message"


def test_acknowledgements_come_in_the_order_of_the_requests(broker, clients):
    """Pipelined SUBSCRIBE, a SUBSCRIBE that changes nothing (invalid filter) and an UNSUBSCRIBE
    that changes nothing: each answer waits for the ones before, whatever work it needs."""
    c = clients.wire(broker.port)
    c.connect("pipeline")
    c.send(packet(SUBSCRIBE, 2, b"\x00\x01" + props() + string("p/a") + b"\x01")
           + packet(SUBSCRIBE, 2, b"\x00\x02" + props() + string("p/#/bad") + b"\x01")
           + packet(UNSUBSCRIBE, 2, b"\x00\x03" + props() + string("p/never"))
           + packet(UNSUBSCRIBE, 2, b"\x00\x04" + props() + string("p/a")))
    got = [c.recv() for _ in range(4)]
    assert [(p.type, p.packet_id(), p.suback_codes()) for p in got] == [
        (SUBACK, 1, [1]), (SUBACK, 2, [0x8F]), (UNSUBACK, 3, [0x11]), (UNSUBACK, 4, [0x00])]
    assert broker.metric("sb_broker_subscriptions") == 0
