"""Publish and subscribe through the real broker with mosquitto's command-line clients, in both
protocol versions and at every QoS."""
import pytest

from conftest import mosquitto_pub, mosquitto_sub, wait_for


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_wildcard_subscriber(broker, version, qos):
    sub = mosquitto_sub(broker.port, "sensors/+/temp", version, qos, count=3)
    wait_for(lambda: broker.metric("sb_broker_subscriptions") == 1, what="the subscription")
    for room in ("kitchen", "hall", "attic"):
        mosquitto_pub(broker.port, f"sensors/{room}/temp", f"{room}-21", version, qos)
    out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    # Three publishers: MQTT orders messages per publisher only, and each may land on a different
    # broker thread than the subscriber.
    assert sorted(out.splitlines()) == ["sensors/attic/temp attic-21", "sensors/hall/temp hall-21",
                                        "sensors/kitchen/temp kitchen-21"]
    assert broker.metric(f'sb_broker_messages_received_total{{qos="{qos}"}}') == 3
    assert broker.metric(f'sb_broker_messages_sent_total{{qos="{qos}"}}') == 3
