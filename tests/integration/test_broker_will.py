"""Will messages: published when a connection ends without a normal DISCONNECT, not after one;
5.0 DISCONNECT 0x04 and the Will Delay Interval (MQTT 5.0 §3.1.2.5, §3.1.3.2; 3.1.1 §3.1.2.5)."""
import signal
import time

import pytest

from conftest import both_versions, mosquitto_sub
from mqtt_wire import (CONTENT_TYPE, PUBACK, USER_PROPERTY, WILL_DELAY_INTERVAL, p_pair, p_str,
                       p_u32, persistent, props)


def watcher(clients, broker, qos=1):
    w = clients.wire(broker.port)
    w.connect("watcher")
    assert w.subscribe(1, ("will/#", qos)).suback_codes() == [qos]
    return w


def with_will(clients, broker, version, client_id, payload=b"gone", qos=1, retain=False,
              will_props=b"", **connect_args):
    c = clients.wire(broker.port, version)
    will = {"topic": f"will/{client_id}", "payload": payload, "qos": qos, "retain": retain}
    if will_props:
        will["properties"] = will_props
    assert c.connect(client_id, will=will, **connect_args).reason() == 0
    return c


@both_versions
def test_will_published_when_socket_closes_without_disconnect(broker, clients, version):
    w = watcher(clients, broker)
    c = with_will(clients, broker, version, "crash", qos=1)
    c.close()
    m = w.expect_message()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/crash", b"gone", 1, False)


@both_versions
def test_will_published_on_keep_alive_timeout(broker, clients, version):
    w = watcher(clients, broker)
    c = with_will(clients, broker, version, "silent", keepalive=1)
    start = time.monotonic()
    m = w.expect_message(timeout=4)
    elapsed = time.monotonic() - start
    assert m.topic == "will/silent"
    assert 1.3 <= elapsed <= 2.5, f"keep alive 1 s timed out after {elapsed:.2f} s"
    c.expect_closed()


@both_versions
def test_no_will_after_normal_disconnect(broker, clients, version):
    w = watcher(clients, broker)
    c = with_will(clients, broker, version, "polite")
    c.disconnect()
    broker.wait_connections(1)
    w.expect_silence(0.3)  # the will was discarded with the normal DISCONNECT


@pytest.mark.parametrize("reason", [0x04, 0x80, 0x83])
def test_will_published_on_disconnect_other_than_normal(broker, clients, reason):
    # 0x04 Disconnect with Will Message asks for it; an error reason (0x80 Unspecified error, 0x83
    # Implementation specific error) is no normal disconnection either: only 0x00 discards the
    # will (§3.1.2.5, §3.14.4).
    w = watcher(clients, broker)
    c = with_will(clients, broker, 5, "asks")
    c.disconnect(reason)
    m = w.expect_message()
    assert (m.topic, m.payload) == ("will/asks", b"gone")


def test_no_will_after_disconnect_with_explicit_reason_0(broker, clients):
    w = watcher(clients, broker)
    c = with_will(clients, broker, 5, "explicit")
    c.disconnect(0x00)
    broker.wait_connections(1)
    w.expect_silence(0.3)  # the will was discarded


@both_versions
def test_retained_will(broker, clients, version):
    c = with_will(clients, broker, version, "keeper", retain=True)
    c.close()
    broker.wait_metric("sb_broker_retained_messages", 1)
    w = watcher(clients, broker)
    m = w.expect_message()
    assert (m.topic, m.payload, m.retain) == ("will/keeper", b"gone", True)


def test_will_properties_are_passed_through(broker, clients):
    w = watcher(clients, broker)
    will_props = props(p_str(CONTENT_TYPE, "text/plain"), p_pair(USER_PROPERTY, "k", "v"),
                       p_u32(WILL_DELAY_INTERVAL, 0))
    c = with_will(clients, broker, 5, "props", will_props=will_props)
    c.close()
    m = w.expect_message()
    assert m.props.get(CONTENT_TYPE) == "text/plain"
    assert m.props.get(USER_PROPERTY) == [("k", "v")]
    assert WILL_DELAY_INTERVAL not in m.props


def test_will_delay(broker, clients):
    w = watcher(clients, broker)
    c = with_will(clients, broker, 5, "delayed", will_props=props(p_u32(WILL_DELAY_INTERVAL, 1)),
                  **persistent(5, expiry_s=60))
    c.close()
    start = time.monotonic()
    m = w.expect_message(timeout=4)
    elapsed = time.monotonic() - start
    assert m.topic == "will/delayed"
    assert 0.9 <= elapsed <= 2.0, f"will delay 1 s, published after {elapsed:.2f} s"
    w.ack(PUBACK, m.packet_id)


def test_will_delay_cancelled_by_resuming_the_session(broker, clients):
    w = watcher(clients, broker)
    c = with_will(clients, broker, 5, "back", will_props=props(p_u32(WILL_DELAY_INTERVAL, 1)),
                  **persistent(5, expiry_s=60))
    c.close()
    broker.wait_connections(1)
    c = clients.wire(broker.port)
    assert c.connect("back", **persistent(5, expiry_s=60)).session_present
    w.expect_silence(1.5)  # past the will delay: resuming in time cancelled the will


def test_will_published_when_session_ends_before_the_delay(broker, clients):
    # §3.1.3.2.2: the will goes at the delay or at the end of the session, whichever is first.
    w = watcher(clients, broker)
    c = with_will(clients, broker, 5, "short", will_props=props(p_u32(WILL_DELAY_INTERVAL, 30)),
                  **persistent(5, expiry_s=1))
    c.close()
    start = time.monotonic()
    m = w.expect_message(timeout=4)
    elapsed = time.monotonic() - start
    assert m.topic == "will/short"
    assert 0.8 <= elapsed <= 2.0, f"session expiry 1 s, will published after {elapsed:.2f} s"


@both_versions
def test_will_of_a_killed_mosquitto_client(broker, clients, version):
    w = watcher(clients, broker)
    v = {4: "mqttv311", 5: "mqttv5"}[version]
    victim = mosquitto_sub(broker.port, "victim/t", v, 0, count=1, timeout=30,
                           extra=["--will-topic", "will/victim", "--will-payload", "killed",
                                  "--will-qos", "1"])
    broker.wait_connections(2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    m = w.expect_message()
    assert (m.topic, m.payload, m.qos) == ("will/victim", b"killed", 1)


@both_versions
def test_will_published_when_the_broker_closes_for_a_protocol_error(broker, clients, version):
    w = watcher(clients, broker)
    c = with_will(clients, broker, version, "rude")
    c.publish("not/#/a/topic", b"x")
    c.expect_closed()
    m = w.expect_message()
    assert (m.topic, m.payload) == ("will/rude", b"gone")
