"""Publish and subscribe through the real broker with mosquitto's command-line clients, in both
protocol versions and at every QoS."""
import subprocess

import pytest

from conftest import wait_for


def mosquitto_sub(port, topic, version, qos, count, timeout=5, extra=()):
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-V", version,
         "-q", str(qos), "-C", str(count), "-W", str(timeout), "-v", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mosquitto_pub(port, topic, message, version, qos, extra=()):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                    "-m", message, "-V", version, "-q", str(qos), *extra],
                   check=True, timeout=5)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_wildcard_subscriber(broker, version, qos):
    sub = mosquitto_sub(broker.port, "sensors/+/temp", version, qos, count=3)
    wait_for(lambda: broker.metric("sb_broker_subscriptions") == 1, what="the subscription")
    for room in ("kitchen", "hall", "attic"):
        mosquitto_pub(broker.port, f"sensors/{room}/temp", f"{room}-21", version, qos)
    out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    assert out.splitlines() == ["sensors/kitchen/temp kitchen-21", "sensors/hall/temp hall-21",
                                "sensors/attic/temp attic-21"]
    assert broker.metric(f'sb_broker_messages_received_total{{qos="{qos}"}}') == 3
    assert broker.metric(f'sb_broker_messages_sent_total{{qos="{qos}"}}') == 3
