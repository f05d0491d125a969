"""Quality of service in both directions: the QoS 1 and 2 flows, exactly-once delivery of QoS 2,
redelivery after reconnect with the same packet identifiers, and the offline queue
(MQTT 5.0 §4.3, §4.4, §4.6; 3.1.1 §4.3, §4.4)."""
import pytest

from conftest import both_versions
from mqtt_wire import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, persistent


def subscriber(clients, broker, version, client_id, topic, qos, **connect_args):
    c = clients.wire(broker.port, version)
    assert c.connect(client_id, **connect_args).reason() == 0
    assert c.subscribe(1, (topic, qos)).suback_codes() == [qos]
    return c


@both_versions
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_flows_of_each_qos_both_directions(broker, clients, version, qos):
    sub = subscriber(clients, broker, version, "sub", "q/t", 2)
    pub = clients.wire(broker.port, version)
    pub.connect("pub")

    # Client to broker.
    pub.publish("q/t", b"payload", qos=qos, packet_id=10 if qos else None)
    if qos == 1:
        ack = pub.expect(PUBACK)
        assert (ack.packet_id(), ack.reason()) == (10, 0)
    elif qos == 2:
        assert pub.expect(PUBREC).packet_id() == 10
        pub.ack(PUBREL, 10)
        assert pub.expect(PUBCOMP).packet_id() == 10

    # Broker to client, at the QoS of the message (the subscription granted 2).
    m = sub.expect_message()
    assert (m.topic, m.payload, m.qos, m.dup, m.retain) == ("q/t", b"payload", qos, False, False)
    if qos == 0:
        assert m.packet_id is None
    else:
        assert m.packet_id != 0
    if qos == 1:
        sub.ack(PUBACK, m.packet_id)
    elif qos == 2:
        sub.ack(PUBREC, m.packet_id)
        assert sub.expect(PUBREL).packet_id() == m.packet_id
        sub.ack(PUBCOMP, m.packet_id)
    sub.expect_silence(0.2)  # one delivery, and no retransmission once acknowledged
    assert broker.metric(f'sb_broker_messages_received_total{{qos="{qos}"}}') == 1
    assert broker.metric(f'sb_broker_messages_sent_total{{qos="{qos}"}}') == 1


@both_versions
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivered_at_the_lower_of_published_and_granted_qos(broker, clients, version, pub_qos,
                                                             sub_qos):
    """paho-mqtt on both ends: the message arrives once, at min(published QoS, granted QoS)."""
    sub = clients.paho(broker.port, "paho-sub", version)
    assert sub.subscribe("down/grade", sub_qos) == [sub_qos]
    pub = clients.paho(broker.port, "paho-pub", version)
    pub.publish("down/grade", b"m", qos=pub_qos)
    [m] = sub.wait_messages(1)
    assert (m.topic, m.payload, m.qos) == ("down/grade", b"m", min(pub_qos, sub_qos))


@both_versions
def test_qos2_retransmission_before_pubrel_is_not_delivered_twice(broker, clients, version):
    sub = subscriber(clients, broker, version, "sub", "once/t", 2)
    pub = clients.wire(broker.port, version)
    pub.connect("pub")
    pub.publish("once/t", b"exactly once", qos=2, packet_id=7)
    assert pub.expect(PUBREC).packet_id() == 7
    # The publisher did not see the PUBREC, say, and sends the PUBLISH again with DUP.
    pub.publish("once/t", b"exactly once", qos=2, packet_id=7, dup=True)
    assert pub.expect(PUBREC).packet_id() == 7, "a retransmission is acknowledged again"
    pub.ack(PUBREL, 7)
    assert pub.expect(PUBCOMP).packet_id() == 7

    m = sub.expect_message()
    assert (m.payload, m.qos) == (b"exactly once", 2)
    sub.ack(PUBREC, m.packet_id)
    sub.expect(PUBREL)
    sub.ack(PUBCOMP, m.packet_id)
    sub.expect_silence(0.3)  # the retransmission must not be a second delivery

    # Once released, the identifier is free again: the same id is a new message.
    pub.publish("once/t", b"next one", qos=2, packet_id=7)
    assert pub.expect(PUBREC).packet_id() == 7
    pub.ack(PUBREL, 7)
    pub.expect(PUBCOMP)
    assert sub.expect_message().payload == b"next one"


def test_pubrel_for_unknown_identifier(broker, clients):
    # MQTT 5.0 §3.7.2.1: PUBCOMP 0x92 Packet Identifier not found.
    c = clients.wire(broker.port)
    c.connect("rel")
    c.ack(PUBREL, 99)
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id(), comp.reason()) == (99, 0x92)


def test_error_pubrec_for_unknown_identifier_gets_no_pubrel(broker, clients):
    # MQTT 5.0 §4.3.3: a PUBREC with an error reason ends the exchange on the client's side; a
    # PUBREL 0x92 answers only a successful one for an unknown identifier.
    c = clients.wire(broker.port)
    c.connect("rec")
    c.ack(PUBREC, 98, reason=0x80)
    c.ack(PUBREC, 99)
    rel = c.expect(PUBREL)
    assert (rel.packet_id(), rel.reason()) == (99, 0x92)


@both_versions
def test_unacknowledged_messages_are_resent_with_same_ids_after_reconnect(broker, clients,
                                                                         version):
    sub = subscriber(clients, broker, version, "resend", "re/#", 2, **persistent(version))
    pub = clients.wire(broker.port, version)
    pub.connect("pub")
    sent = [("re/a", 1), ("re/b", 2), ("re/c", 1), ("re/d", 2)]
    for i, (topic, qos) in enumerate(sent, start=1):
        pub.publish(topic, topic.encode(), qos=qos, packet_id=i)
        if qos == 2:
            pub.expect(PUBREC)
            pub.ack(PUBREL, i)
            pub.expect(PUBCOMP)
        else:
            pub.expect(PUBACK)

    first = [sub.expect_message() for _ in sent]
    assert [(m.topic, m.qos, m.dup) for m in first] == [(t, q, False) for t, q in sent]
    ids = [m.packet_id for m in first]
    assert len(set(ids)) == 4, ids
    # Only re/b's PUBREC goes back; its PUBREL is then owed, the rest are unacknowledged.
    sub.ack(PUBREC, ids[1])
    assert sub.expect(PUBREL).packet_id() == ids[1]
    sub.close()
    broker.wait_connections(1)

    sub = clients.wire(broker.port, version)
    assert sub.connect("resend", **persistent(version)).session_present
    again = [sub.expect(PUBLISH if i != 1 else PUBREL) for i in range(4)]
    # §4.4: in the original order, with the original identifiers, PUBLISH with DUP set.
    assert [p.type for p in again] == [PUBLISH, PUBREL, PUBLISH, PUBLISH]
    assert again[1].packet_id() == ids[1]
    for i in (0, 2, 3):
        m = again[i].message()
        assert (m.topic, m.packet_id, m.dup, m.qos, m.payload) == \
            (sent[i][0], ids[i], True, sent[i][1], sent[i][0].encode())
    # Finish every flow; nothing is sent again after that.
    sub.ack(PUBACK, ids[0])
    sub.ack(PUBCOMP, ids[1])
    sub.ack(PUBACK, ids[2])
    sub.ack(PUBREC, ids[3])
    assert sub.expect(PUBREL).packet_id() == ids[3]
    sub.ack(PUBCOMP, ids[3])
    sub.expect_silence(0.2)
    sub.disconnect()
    broker.wait_connections(1)
    sub = clients.wire(broker.port, version)
    assert sub.connect("resend", **persistent(version)).session_present
    sub.expect_silence(0.2)  # all acknowledged: nothing left to resend


@both_versions
def test_offline_session_queues_qos1_and_qos2_and_drops_qos0(broker, clients, version):
    sub = subscriber(clients, broker, version, "away", "off/#", 2, **persistent(version))
    sub.disconnect()
    broker.wait_connections(0)

    pub = clients.paho(broker.port, "pub", version)
    pub.publish("off/q0", b"zero", qos=0)
    pub.publish("off/q1", b"one", qos=1)
    pub.publish("off/q2", b"two", qos=2)
    broker.wait_metric('sb_broker_messages_dropped_total{reason="offline_qos0"}', 1)

    sub = clients.wire(broker.port, version)
    assert sub.connect("away", **persistent(version)).session_present
    m1 = sub.expect_message()
    m2 = sub.expect_message()
    # Queued, never sent before: DUP is 0 (§3.3.1.1).
    assert [(m.topic, m.payload, m.qos, m.dup) for m in (m1, m2)] == \
        [("off/q1", b"one", 1, False), ("off/q2", b"two", 2, False)]
    sub.ack(PUBACK, m1.packet_id)
    sub.ack(PUBREC, m2.packet_id)
    sub.expect(PUBREL)
    sub.ack(PUBCOMP, m2.packet_id)
    sub.expect_silence(0.2)  # the QoS 0 message was dropped, not queued


def test_error_pubrec_ends_the_outbound_flow(broker, clients):
    # MQTT 5.0 §4.3.3: a PUBREC with a reason code of 0x80 or more ends the flow without PUBREL.
    sub = subscriber(clients, broker, 5, "sub", "rec/t", 2)
    pub = clients.wire(broker.port)
    pub.connect("pub")
    pub.publish("rec/t", b"x", qos=2, packet_id=1)
    pub.expect(PUBREC)
    m = sub.expect_message()
    assert m.qos == 2
    sub.ack(PUBREC, m.packet_id, reason=0x80)
    sub.expect_silence(0.2)


@both_versions
def test_inbound_qos2_is_remembered_across_reconnect(broker, clients, version):
    """A publisher that lost its connection after PUBREC resumes the flow on the next one: its
    retransmitted PUBLISH is not delivered again, and its PUBREL completes (§4.3.3, §4.4)."""
    sub = subscriber(clients, broker, version, "sub", "in2/t", 0)
    pub = clients.wire(broker.port, version)
    pub.connect("pub2", **persistent(version))
    pub.publish("in2/t", b"x", qos=2, packet_id=5)
    pub.expect(PUBREC)
    pub.close()
    broker.wait_connections(1)
    pub = clients.wire(broker.port, version)
    assert pub.connect("pub2", **persistent(version)).session_present
    pub.publish("in2/t", b"x", qos=2, packet_id=5, dup=True)
    assert pub.expect(PUBREC).packet_id() == 5
    pub.ack(PUBREL, 5)
    comp = pub.expect(PUBCOMP)
    assert (comp.packet_id(), comp.reason()) == (5, 0)
    assert sub.expect_message().payload == b"x"
    sub.expect_silence(0.3)  # delivered once, on the first PUBLISH


@both_versions
@pytest.mark.parametrize("qos", [1, 2])
def test_many_messages_arrive_once_and_in_order(broker, clients, version, qos):
    """paho-mqtt acknowledging as it goes, with the publisher not waiting for each flow: more
    messages than the in-flight window (64), all delivered once, in publish order (§4.6)."""
    sub = clients.paho(broker.port, "orderly-sub", version)
    sub.subscribe("order/t", qos)
    pub = clients.paho(broker.port, "orderly-pub", version)
    infos = [pub.client.publish("order/t", str(i).encode(), qos) for i in range(300)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    got = sub.wait_messages(300, timeout=15)
    assert [int(m.payload) for m in got] == list(range(300))
    assert {m.qos for m in got} == {qos}
