"""Sessions: the CONNACK session present flag, session expiry, client identifiers and takeover
(MQTT 5.0 §3.1.2.4, §3.1.2.11.2, §3.1.3.1, §3.1.4; 3.1.1 §3.1.2.4, §3.2.2.2)."""
import time

from conftest import both_versions, mosquitto_pub, mosquitto_sub, wait_for
from mqtt_wire import (ASSIGNED_CLIENT_IDENTIFIER, CONNACK, DISCONNECT, PUBACK,
                       SESSION_EXPIRY_INTERVAL, WILL_DELAY_INTERVAL, p_u32, persistent, props)


def publish_q1(clients, broker, topic, payload, version=5):
    """Publishes one QoS 1 message from a throwaway client and waits for its PUBACK."""
    pub = clients.wire(broker.port, version)
    pub.connect(f"pub-{topic}")
    pub.publish(topic, payload, qos=1, packet_id=1)
    pub.expect(4)
    pub.disconnect()
    pub.close()


@both_versions
def test_session_present_new_resumed_and_discarded(broker, clients, version):
    c = clients.wire(broker.port, version)
    ack = c.connect("sess", **persistent(version))
    assert (ack.reason(), ack.session_present) == (0, False), "a new session is not present"
    assert c.subscribe(1, ("sess/t", 1)).suback_codes() == [1]
    c.disconnect()
    broker.wait_connections(0)

    c = clients.wire(broker.port, version)
    ack = c.connect("sess", **persistent(version))
    assert (ack.reason(), ack.session_present) == (0, True), "a resumed session is present"
    # The subscription came back with the session: no SUBSCRIBE on this connection.
    publish_q1(clients, broker, "sess/t", b"kept")
    m = c.expect_message()
    assert (m.topic, m.payload, m.qos) == ("sess/t", b"kept", 1)
    c.ack(4, m.packet_id)
    c.disconnect()
    broker.wait_connections(0)

    c = clients.wire(broker.port, version)
    ack = c.connect("sess", clean=True)
    assert (ack.reason(), ack.session_present) == (0, False), "clean start discards the session"
    assert broker.metric("sb_broker_subscriptions") == 0
    publish_q1(clients, broker, "sess/t", b"after clean start")
    c.expect_silence(0.3)  # the old subscription must be gone with the old session


@both_versions
def test_session_ends_at_disconnect_without_expiry(broker, clients, version):
    # 5.0: clean start 0 but no Session Expiry Interval means expiry 0 (§3.1.2.11.2);
    # 3.1.1: clean session 1 ends the session with the connection (§3.1.2.4).
    c = clients.wire(broker.port, version)
    assert c.connect("short", clean=version == 4).reason() == 0
    assert c.subscribe(1, ("short/t", 1)).suback_codes() == [1]
    assert broker.metric("sb_broker_sessions") == 1
    c.disconnect()
    broker.wait_metric("sb_broker_sessions", 0)
    c = clients.wire(broker.port, version)
    ack = c.connect("short", **persistent(version))
    assert (ack.reason(), ack.session_present) == (0, False)


def test_session_expiry_one_second(broker, clients):
    c = clients.wire(broker.port)
    c.connect("exp", **persistent(5, expiry_s=1))
    c.disconnect()
    broker.wait_connections(0)
    c = clients.wire(broker.port)
    assert c.connect("exp", **persistent(5, expiry_s=1)).session_present, \
        "the session must survive a reconnect within its expiry"
    c.disconnect()
    broker.wait_connections(0)
    ended_from = time.monotonic()
    broker.wait_metric("sb_broker_sessions", 0, timeout=4)
    elapsed = time.monotonic() - ended_from
    assert 0.8 <= elapsed <= 2.5, f"session with expiry 1 s ended after {elapsed:.2f} s"
    c = clients.wire(broker.port)
    ack = c.connect("exp", **persistent(5, expiry_s=1))
    assert (ack.reason(), ack.session_present) == (0, False), "an expired session is not present"


def test_disconnect_can_end_the_session_by_expiry_zero(broker, clients):
    # MQTT 5.0 §3.14.2.2.2: the DISCONNECT may change the session expiry interval.
    c = clients.wire(broker.port)
    c.connect("dis0", **persistent(5, expiry_s=300))
    c.disconnect(0, props(p_u32(SESSION_EXPIRY_INTERVAL, 0)))
    broker.wait_metric("sb_broker_sessions", 0)
    c = clients.wire(broker.port)
    assert not c.connect("dis0", **persistent(5)).session_present


def test_disconnect_cannot_give_expiry_to_a_session_without_one(broker, clients):
    # MQTT 5.0 §3.14.2.2.2: expiry 0 at CONNECT and non-zero at DISCONNECT is a Protocol Error.
    c = clients.wire(broker.port)
    c.connect("dis1", clean=True)
    c.disconnect(0, props(p_u32(SESSION_EXPIRY_INTERVAL, 60)))
    seen = c.expect_closed()
    assert [(p.type, p.reason()) for p in seen] == [(DISCONNECT, 0x82)]
    broker.wait_metric("sb_broker_sessions", 0)


def test_zero_length_client_id_gets_assigned_identifier(broker, clients):
    ids = set()
    for _ in range(2):
        c = clients.wire(broker.port)
        ack = c.connect("")
        assert ack.reason() == 0
        assigned = ack.properties().get(ASSIGNED_CLIENT_IDENTIFIER)
        assert assigned, f"CONNACK without Assigned Client Identifier: {ack.properties()}"
        ids.add(assigned)
    assert len(ids) == 2, "two clients were assigned the same identifier"


def test_zero_length_client_id_311(broker, clients):
    # 3.1.1 §3.1.3.1: allowed only with clean session 1; otherwise return code 2.
    c = clients.wire(broker.port, 4)
    ack = c.connect("", clean=False)
    assert (ack.type, ack.reason()) == (CONNACK, 2)
    assert c.expect_closed() == []
    c = clients.wire(broker.port, 4)
    assert c.connect("", clean=True).reason() == 0
    c.ping()


@both_versions
def test_takeover_closes_old_connection_and_publishes_its_will(broker, clients, version):
    watcher = clients.wire(broker.port)
    watcher.connect("watcher")
    watcher.subscribe(1, ("will/#", 1))
    old = clients.wire(broker.port, version)
    will = {"topic": "will/twin", "payload": b"old one gone", "qos": 1}
    old.connect("twin", will=will, **persistent(version))
    old.subscribe(1, ("twin/t", 1))

    new = clients.wire(broker.port, version)
    ack = new.connect("twin", **persistent(version))
    assert (ack.reason(), ack.session_present) == (0, True), "the session moves to the new one"
    seen = old.expect_closed()
    if version == 5:
        assert [(p.type, p.reason()) for p in seen] == [(DISCONNECT, 0x8E)]  # Session taken over
    else:
        assert seen == [], "3.1.1 has no DISCONNECT from the server"
    m = watcher.expect_message()
    assert (m.topic, m.payload) == ("will/twin", b"old one gone")
    watcher.ack(4, m.packet_id)
    # The new connection serves the session, subscription included.
    publish_q1(clients, broker, "twin/t", b"to the new one")
    m = new.expect_message()
    assert m.payload == b"to the new one"
    broker.wait_connections(2)  # watcher and new; the old one is gone
    assert broker.metric('sb_broker_disconnects_total{reason="session_taken_over"}') == 1


def test_takeover_resuming_before_will_delay_suppresses_will(broker, clients):
    # §3.1.3.2.2: a will with a delay is not sent if the session is resumed before the delay.
    watcher = clients.wire(broker.port)
    watcher.connect("watcher")
    watcher.subscribe(1, ("will/#", 0))
    old = clients.wire(broker.port)
    will = {"topic": "will/slow", "payload": b"x",
            "properties": props(p_u32(WILL_DELAY_INTERVAL, 1))}
    old.connect("slow", will=will, **persistent(5))
    new = clients.wire(broker.port)
    assert new.connect("slow", **persistent(5)).session_present
    assert [p.reason() for p in old.expect_closed()] == [0x8E]
    watcher.expect_silence(1.5)  # past the will delay: the will must not come


def test_takeover_with_paho(broker, clients):
    """The same through a library client: the first paho client is told it was taken over."""
    first = clients.paho(broker.port, "paho-twin", 5)
    second = clients.paho(broker.port, "paho-twin", 5)
    assert second.connack[1] == 0
    wait_for(lambda: first.disconnects, what="the first client to be disconnected")
    assert second.subscribe("paho/twin", 1) == [1]
    second.publish("paho/twin", b"still mine", qos=1)
    assert [m.payload for m in second.wait_messages(1)] == [b"still mine"]


@both_versions
def test_takeover_resends_what_the_old_connection_left_unacknowledged(broker, clients, version):
    old = clients.wire(broker.port, version)
    old.connect("heir", **persistent(version))
    old.subscribe(1, ("heir/t", 1))
    publish_q1(clients, broker, "heir/t", b"unacked")
    m = old.expect_message()
    new = clients.wire(broker.port, version)
    assert new.connect("heir", **persistent(version)).session_present
    again = new.expect_message()
    assert (again.packet_id, again.dup, again.payload) == (m.packet_id, True, b"unacked")
    new.ack(PUBACK, again.packet_id)
    new.expect_silence(0.2)


def test_expired_session_takes_its_subscriptions_along(broker, clients):
    c = clients.wire(broker.port)
    c.connect("gone", **persistent(5, expiry_s=1))
    c.subscribe(1, ("gone/t", 1), ("$share/g/gone/t", 1))
    c.close()
    broker.wait_metric("sb_broker_sessions", 0, timeout=4)
    assert broker.metric("sb_broker_subscriptions") == 0
    publish_q1(clients, broker, "gone/t", b"to nobody")
    broker.wait_metric("sb_broker_messages_unrouted_total", 1)


def test_session_expiry_is_capped_by_max_session_expiry(start_broker, clients):
    # §3.2.2.3.2: the server says so in CONNACK when it uses another interval than asked.
    broker = start_broker("[limits]\nmax_session_expiry_s = 5\n")
    c = clients.wire(broker.port)
    assert c.connect("capped", **persistent(5, expiry_s=100)).properties().get(
        SESSION_EXPIRY_INTERVAL) == 5
    c = clients.wire(broker.port)
    ack = c.connect("under", **persistent(5, expiry_s=3))
    assert SESSION_EXPIRY_INTERVAL not in ack.properties()


@both_versions
def test_persistent_session_with_mosquitto_clients(broker, version):
    v = {4: "mqttv311", 5: "mqttv5"}[version]
    # -c: clean session 0 (5.0: with a session that never expires); -W 1 ends it once subscribed.
    first = mosquitto_sub(broker.port, "mosq/persist", v, 1, count=1, timeout=1,
                          extra=["-c", "-i", "mosq-persist"])
    first.communicate(timeout=10)
    broker.wait_connections(0)
    assert broker.metric("sb_broker_subscriptions") == 1, "the subscription outlives the client"
    mosquitto_pub(broker.port, "mosq/persist", "while away", v, 1)
    again = mosquitto_sub(broker.port, "mosq/persist", v, 1, count=1,
                          extra=["-c", "-i", "mosq-persist"])
    out, err = again.communicate(timeout=10)
    assert again.returncode == 0, err
    assert out.splitlines() == ["mosq/persist while away"]


def test_takeover_with_clean_start_discards_session_and_publishes_delayed_will(broker, clients):
    # The old session ends with the takeover, so its will goes now, delay or not (§3.1.3.2.2).
    watcher = clients.wire(broker.port)
    watcher.connect("watcher")
    watcher.subscribe(1, ("will/#", 0))
    old = clients.wire(broker.port)
    old.connect("fresh", will={"topic": "will/fresh", "payload": b"ended",
                               "properties": props(p_u32(WILL_DELAY_INTERVAL, 30))},
                **persistent(5))
    old.subscribe(1, ("fresh/t", 1))
    new = clients.wire(broker.port)
    assert not new.connect("fresh", clean=True).session_present
    assert [p.reason() for p in old.expect_closed()] == [0x8E]
    assert watcher.expect_message().payload == b"ended"
    broker.wait_metric("sb_broker_subscriptions", 1)  # the watcher's; the old session's is gone


@both_versions
def test_takeover_does_not_resume_a_session_that_ends_with_its_connection(broker, clients,
                                                                          version):
    # 5.0: clean start 0 without a Session Expiry Interval, 3.1.1: clean session 1. The session
    # lasts as long as the connection, so a takeover finds none to resume (§3.1.2.4, §3.1.2.11.2).
    old = clients.wire(broker.port, version)
    old.connect("brief", clean=version == 4)
    old.subscribe(1, ("brief/t", 1))
    new = clients.wire(broker.port, version)
    ack = new.connect("brief", **persistent(version))
    assert (ack.reason(), ack.session_present) == (0, False)
    old.expect_closed()
    assert broker.metric("sb_broker_subscriptions") == 0
    publish_q1(clients, broker, "brief/t", b"nobody")
    new.expect_silence(0.2)  # the old subscription went with the old session
