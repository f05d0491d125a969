"""Retained messages: stored, sent to new subscriptions with RETAIN set, replaced, deleted by an
empty payload; 5.0 Retain Handling and Retain As Published (MQTT 5.0 §3.3.1.3, §3.8.3.1;
3.1.1 §3.3.1.3)."""
import time

import pytest

from conftest import (both_versions, expect_only_the_lasting_retained, mosquitto_pub, mosquitto_sub,
                      publish_expiring_retained)
from mqtt_wire import PUBACK, PUBLISH, packet, props, string, sub_options

MOSQ_VERSION = {4: "mqttv311", 5: "mqttv5"}


def retain(clients, broker, topic, payload, qos=1, version=5):
    """Publishes a retained message from a throwaway client and waits for it to be stored: the
    broker stores it while handling the PUBLISH, before it answers the ack (or, at QoS 0, the
    PINGREQ sent behind it)."""
    pub = clients.wire(broker.port, version)
    pub.connect("retainer")
    pub.publish(topic, payload, qos=qos, packet_id=1 if qos else None, retain=True)
    if qos:
        pub.expect(PUBACK if qos == 1 else 5)
    else:
        pub.ping()
    pub.disconnect()
    pub.close()


def received(c, count):
    """`count` messages, sorted by topic: retained messages of several topics come in any order."""
    return sorted((c.expect_message() for _ in range(count)), key=lambda m: m.topic)


@both_versions
def test_retained_stored_replaced_and_deleted(broker, clients, version):
    retain(clients, broker, "ret/a", b"one")
    retain(clients, broker, "ret/b/deep", b"two")
    broker.wait_metric("sb_broker_retained_messages", 2)

    s = clients.wire(broker.port, version)
    s.connect("s1")
    assert s.subscribe(1, ("ret/#", 1)).suback_codes() == [1]
    got = received(s, 2)
    assert [(m.topic, m.payload, m.retain) for m in got] == \
        [("ret/a", b"one", True), ("ret/b/deep", b"two", True)]
    for m in got:
        s.ack(PUBACK, m.packet_id)

    # A live message to an existing subscription has RETAIN 0, even if it is retained
    # (3.1.1 §3.3.1.3; 5.0 without Retain As Published).
    retain(clients, broker, "ret/a", b"three")
    m = s.expect_message()
    assert (m.topic, m.payload, m.retain) == ("ret/a", b"three", False)
    s.ack(PUBACK, m.packet_id)

    s2 = clients.wire(broker.port, version)
    s2.connect("s2")
    s2.subscribe(1, ("ret/+", 1))
    m = s2.expect_message()
    assert (m.topic, m.payload, m.retain) == ("ret/a", b"three", True), "replaced, not added"
    s2.ack(PUBACK, m.packet_id)
    s2.expect_silence(0.2)  # "ret/+" does not match ret/b/deep
    assert broker.metric("sb_broker_retained_messages") == 2

    # An empty retained payload deletes (and is itself not retained).
    retain(clients, broker, "ret/a", b"")
    broker.wait_metric("sb_broker_retained_messages", 1)
    s3 = clients.wire(broker.port, version)
    s3.connect("s3")
    s3.subscribe(1, ("ret/#", 1))
    m = s3.expect_message()
    assert (m.topic, m.payload) == ("ret/b/deep", b"two")
    s3.ack(PUBACK, m.packet_id)
    s3.expect_silence(0.2)


@both_versions
def test_retained_with_mosquitto_clients(broker, version):
    v = MOSQ_VERSION[version]
    mosquitto_pub(broker.port, "mosq/retained", "kept", v, 1, extra=["-r"])
    broker.wait_metric("sb_broker_retained_messages", 1)
    sub = mosquitto_sub(broker.port, "mosq/#", v, 1, count=1, extra=["-F", "%r %t %p"])
    out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    assert out.splitlines() == ["1 mosq/retained kept"]
    mosquitto_pub(broker.port, "mosq/retained", "", v, 1, extra=["-r"])
    broker.wait_metric("sb_broker_retained_messages", 0)


@both_versions
@pytest.mark.parametrize("stored_qos,sub_qos", [(2, 1), (0, 2), (1, 1)])
def test_retained_qos_is_the_lower(broker, clients, version, stored_qos, sub_qos):
    retain(clients, broker, "rq/t", b"q", qos=stored_qos)
    broker.wait_metric("sb_broker_retained_messages", 1)
    s = clients.wire(broker.port, version)
    s.connect("s")
    s.subscribe(1, ("rq/t", sub_qos))
    m = s.expect_message()
    assert (m.qos, m.retain) == (min(stored_qos, sub_qos), True)


@both_versions
def test_wildcards_do_not_match_dollar_topics(broker, clients, version):
    # §4.7.2: a filter starting with a wildcard does not match topics starting with '$'.
    retain(clients, broker, "$internal/x", b"hidden")
    retain(clients, broker, "visible/x", b"shown")
    broker.wait_metric("sb_broker_retained_messages", 2)
    s = clients.wire(broker.port, version)
    s.connect("s")
    for packet_id, wildcard in enumerate(["#", "+/x"], start=1):
        s.subscribe(packet_id, (wildcard, 0))
        m = s.expect_message()
        assert (m.topic, m.payload) == ("visible/x", b"shown"), wildcard
        s.expect_silence(0.2)
    s.subscribe(3, ("$internal/#", 0))
    assert s.expect_message().payload == b"hidden"


def test_retain_handling(broker, clients):
    retain(clients, broker, "rh/t", b"kept")
    broker.wait_metric("sb_broker_retained_messages", 1)
    s = clients.wire(broker.port)
    s.connect("s")
    # 0: sent at every subscribe, a repeated one included.
    s.subscribe(1, ("rh/t", sub_options(0, retain_handling=0)))
    assert s.expect_message().retain
    s.subscribe(2, ("rh/t", sub_options(0, retain_handling=0)))
    assert s.expect_message().payload == b"kept"
    # 1: only when the subscription is new.
    s.subscribe(3, ("rh/+", sub_options(0, retain_handling=1)))
    assert s.expect_message().payload == b"kept"
    s.subscribe(4, ("rh/+", sub_options(0, retain_handling=1)))
    s.expect_silence(0.2)
    # 2: never.
    s.subscribe(5, ("rh/#", sub_options(0, retain_handling=2)))
    s.expect_silence(0.2)


def test_retain_as_published(broker, clients):
    keep = clients.wire(broker.port)
    keep.connect("keep")
    keep.subscribe(1, ("rap/t", sub_options(1, retain_as_published=True)))
    clear = clients.wire(broker.port)
    clear.connect("clear")
    clear.subscribe(1, ("rap/t", sub_options(1)))
    retain(clients, broker, "rap/t", b"live")
    assert keep.expect_message().retain, "Retain As Published keeps the publisher's RETAIN flag"
    assert not clear.expect_message().retain
    # A non-retained publish arrives with RETAIN 0 either way.
    pub = clients.wire(broker.port)
    pub.connect("pub")
    pub.publish("rap/t", b"plain", qos=0)
    assert not keep.expect_message().retain
    assert not clear.expect_message().retain


def test_retained_message_expires(broker, clients):
    publish_expiring_retained(clients, broker.port, "rx")
    # Let the 1 s one expire: there is no event to wait for, only time; the check below is that
    # it is then NOT delivered.
    time.sleep(1.1)
    expect_only_the_lasting_retained(clients, broker.port, "rx")
    # The subscription's filter reached it: it is gone from memory, not only skipped.
    assert broker.metric("sb_broker_retained_messages") == 1


@both_versions
def test_subscription_matching_more_retained_messages_than_the_queue_holds(start_broker, clients,
                                                                           version):
    broker = start_broker("[limits]\nmax_queued_messages = 5\n")
    pub = clients.wire(broker.port, version)
    pub.connect("pub")
    extra = props() if version == 5 else b""
    pub.send(b"".join(packet(PUBLISH, 1, string(f"many/{i}") + extra + b"x") for i in range(200)))
    pub.ping()  # after all 200, in order
    broker.wait_metric("sb_broker_retained_messages", 200)
    s = clients.wire(broker.port, version)
    s.connect("s")
    s.subscribe(1, ("many/#", 0))
    topics = {s.expect_message().topic for _ in range(200)}
    assert topics == {f"many/{i}" for i in range(200)}
    assert broker.metric('sb_broker_messages_dropped_total{reason="queue_full"}') == 0
