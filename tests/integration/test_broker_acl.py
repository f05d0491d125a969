"""Access rules ([[acl]] in the configuration, see conf/broker.toml): an ordered list, the first
rule that applies decides, default allow. A denied subscription gets 0x87 (3.1.1: 0x80) in SUBACK;
a denied publish is dropped (5.0: 0x87 in its acknowledgement)."""
import pytest

from conftest import both_versions
from mqtt_wire import PUBACK, PUBCOMP, PUBREC, PUBREL

ACL = """
[[acl]]
action = "allow"
access = "all"
filter = "secret/public/#"

[[acl]]
action = "deny"
access = "all"
filter = "secret/#"

[[acl]]
action = "deny"
access = "publish"
filter = "readonly/#"

[[acl]]
action = "deny"
access = "subscribe"
filter = "writeonly/#"
"""


@pytest.fixture
def acl_broker(start_broker):
    return start_broker(ACL)


def denied_code(version):
    return 0x87 if version == 5 else 0x80


@both_versions
def test_denied_subscriptions(acl_broker, clients, version):
    c = clients.wire(acl_broker.port, version)
    c.connect("sub")
    no = denied_code(version)
    codes = c.subscribe(1, ("secret/x", 1), ("secret/public/x", 1), ("#", 1), ("public/#", 1),
                        ("writeonly/a", 0), ("readonly/a", 0), ("+/x", 0),
                        ("$share/g/secret/y", 0)).suback_codes()
    # "#" and "+/x" would receive secret topics, so the deny rule on "secret/#" denies them;
    # "secret/public/x" is allowed by the first rule, which matches first; shared subscriptions
    # are judged by their filter.
    assert codes == [no, 1, no, 1, no, 0, no, no]
    assert acl_broker.metric("sb_broker_subscriptions") == 3


@both_versions
def test_denied_publish_is_dropped_and_others_pass(acl_broker, clients, version):
    sub = clients.wire(acl_broker.port, version)
    sub.connect("sub")
    assert sub.subscribe(1, ("secret/public/#", 1), ("public/#", 1), ("readonly/#", 1),
                         ("writeonly/#", 1)).suback_codes() == [1, 1, 1, denied_code(version)]
    pub = clients.wire(acl_broker.port, version)
    pub.connect("pub")
    # 5.0 refuses with Not authorized in the ack; 3.1.1 has no way to say it (its acks carry no
    # reason), so there only the drop counter below tells.
    pid = 0
    for topic, allowed in [("secret/x", False), ("secret/public/x", True), ("readonly/x", False),
                           ("public/x", True)]:
        pid += 1
        pub.publish(topic, topic.encode(), qos=1, packet_id=pid)
        ack = pub.expect(PUBACK)
        assert ack.packet_id() == pid, topic
        if version == 5:
            assert ack.reason() == (0 if allowed else 0x87), topic
    pid += 1
    pub.publish("secret/q2", b"x", qos=2, packet_id=pid)
    rec = pub.expect(PUBREC)
    assert rec.packet_id() == pid
    if version == 5:
        assert rec.reason() == 0x87
    else:  # the QoS 2 flow goes on in 3.1.1
        pub.ack(PUBREL, pid)
        pub.expect(PUBCOMP)
    pub.publish("secret/q0", b"x")

    got = [sub.expect_message() for _ in range(2)]
    assert [m.topic for m in got] == ["secret/public/x", "public/x"]
    for m in got:
        sub.ack(PUBACK, m.packet_id)
    acl_broker.wait_metric('sb_broker_messages_dropped_total{reason="not_authorized"}', 4)
    sub.expect_silence(0.2)  # nothing denied got through


def test_denied_will_is_not_published(acl_broker, clients):
    watcher = clients.wire(acl_broker.port)
    watcher.connect("watcher")
    watcher.subscribe(1, ("readonly/#", 0))
    c = clients.wire(acl_broker.port)
    c.connect("sneaky", will={"topic": "readonly/will", "payload": b"x"})
    c.close()
    acl_broker.wait_metric('sb_broker_messages_dropped_total{reason="not_authorized"}', 1)
    watcher.expect_silence(0.2)


def test_acl_with_paho(acl_broker, clients):
    c = clients.paho(acl_broker.port, "paho-acl", 5)
    assert c.subscribe("secret/a", 1) == [0x87]
    assert c.subscribe("secret/public/a", 1) == [1]
    c.publish("secret/public/a", b"fine", qos=1)
    assert [m.payload for m in c.wait_messages(1)] == [b"fine"]
