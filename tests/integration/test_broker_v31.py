"""MQTT 3.1 clients (protocol name "MQIsdp", level 3), which mosquitto and EMQX still serve: the
broker treats them as 3.1.1, except where 3.1 differs (a client id is required; CONNACK's first
byte is reserved)."""
import paho.mqtt.client as paho

from conftest import wait_for
from mqtt_wire import CONNACK, CONNECT, DISCONNECT, WireClient, packet, string


def connect_31(broker, client_id, clean=True):
    c = WireClient(broker.port, version=4)  # 3.1 packets are encoded as 3.1.1's
    c.send(packet(CONNECT, 0, string("MQIsdp") + bytes([3, 0x02 if clean else 0, 0, 60])
                  + string(client_id)))
    return c


def test_a_3_1_client_publishes_and_receives(broker):
    got = []
    c = paho.Client(client_id="old-timer", protocol=paho.MQTTv31)
    c.on_message = lambda client, userdata, message: got.append(message.payload)
    c.on_subscribe = lambda client, userdata, mid, granted: client.publish("v31/t", b"hi", 1)
    c.on_connect = lambda client, userdata, flags, rc: client.subscribe("v31/t", 1)
    c.connect("127.0.0.1", broker.port, keepalive=30)
    c.loop_start()
    try:
        wait_for(lambda: got == [b"hi"], what="the 3.1 client's own message")
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_3_1_client_needs_a_client_id(broker):
    c = connect_31(broker, "")
    assert c.expect(CONNACK).body == b"\x00\x02"  # identifier rejected, even for a clean session
    assert c.expect_closed() == []
    assert broker.metric('sb_broker_connections_rejected_total{reason="client_id_rejected"}') == 1


def test_a_3_1_connack_keeps_its_first_byte_reserved(broker):
    c = connect_31(broker, "keeper", clean=False)
    assert c.expect(CONNACK).body == b"\x00\x00"
    c.send(packet(DISCONNECT, 0, b""))
    c.close()
    # The session is resumed (3.1.1 would say "session present"), but 3.1 has no such flag.
    wait_for(lambda: broker.metric("sb_broker_connections") == 0, what="the disconnect")
    assert broker.metric("sb_broker_sessions") == 1
    c = connect_31(broker, "keeper", clean=False)
    assert c.expect(CONNACK).body == b"\x00\x00"
