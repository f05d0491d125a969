"""Broker nodes as one cluster (issue: the broker cluster): publish on one node and subscribe on
another at every QoS and through wildcards, retained messages wherever they were set, a client id
taken over from another node with its session, shared subscriptions spread over the nodes with
each message delivered once, and a node that dies or leaves."""
import collections
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from cluster_fixtures import (CLUSTER_CONFIG, HANDED_OUT, LOCAL_ROUTES, REMOTE_ROUTES,  # noqa: F401
                              TAKEN_IN, cluster, redis_monitor, redis_server, wait_meshed,
                              wait_remote_routes)
from conftest import (Broker, assert_serves, both_versions, clock_off_by, expect_only_the_lasting_retained,
                      publish_expiring_retained, run_bench, wait_for)
from mqtt_wire import (CONNACK, DISCONNECT, MESSAGE_EXPIRY_INTERVAL, PINGREQ, PINGRESP, PUBACK,
                       PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, USER_PROPERTY,
                       connect_packet, p_pair,
                       p_u32, packet, persistent, props, string, sub_options)

SESSION_EXPIRY_INTERVAL = 0x11


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_subscribers_on_other_nodes(cluster, clients, qos):
    a, b, c = cluster(3)
    on_b = clients.paho(b.port, "sub-b")
    on_b.subscribe("sensors/+/temp", qos)
    on_c = clients.paho(c.port, "sub-c")
    on_c.subscribe("sensors/#", qos)
    wait_remote_routes(a, 2)

    publisher = clients.paho(a.port, "pub-a")
    for i in range(40):
        publisher.publish(f"sensors/{i % 4}/temp", f"t{i}", qos)
    publisher.publish("sensors/1/humidity", "h", qos)

    expected = [f"t{i}" for i in range(40)]
    # In the order of publishing: one publisher's messages travel one link in order.
    got_b = on_b.wait_messages(40)
    assert [m.payload.decode() for m in got_b] == expected
    assert {m.qos for m in got_b} == {qos}
    got_c = on_c.wait_messages(41)
    assert [m.payload.decode() for m in got_c] == expected + ["h"]
    assert a.metric("sb_broker_messages_forwarded_total") >= 81
    assert b.metric("sb_broker_messages_received_from_nodes_total") >= 40


def test_acknowledgements_keep_the_order_of_publishes_that_wait_for_different_nodes(cluster,
                                                                                     clients):
    # A QoS 1 PUBACK waits until every node the message went to has taken it; messages to b, to c
    # and to no other node are taken in whatever order the links go, and the PUBACKs still go out
    # in the order of the publishes (§4.6). 3.1.1, which has no receive maximum: all 600 wait at
    # once.
    a, b, c = cluster(3)
    for node, topic in ((b, "to-b"), (c, "to-c")):
        sub = clients.paho(node.port, f"sub-{topic}")
        sub.subscribe(topic, 1)
    wait_remote_routes(a, 2)
    pub = clients.wire(a.port, version=4)
    assert pub.connect("pub").reason() == 0
    topics = ("to-b", "to-c", "nowhere")
    pub.send(b"".join(packet(PUBLISH, 2, string(topics[i % 3]) + struct.pack("!H", i) + b"m")
                      for i in range(1, 601)))
    acks = [pub.expect(PUBACK, timeout=10).packet_id() for _ in range(600)]
    assert acks == list(range(1, 601))


def test_a_repeated_qos2_publish_is_acknowledged_in_its_turn(cluster, clients):
    # A QoS 2 PUBLISH sent again after a reconnect (received on the session's earlier
    # connection, not yet released) is not delivered again, and its PUBREC goes out in its turn
    # (§4.6): behind the PUBACK of a message sent before it, which waits for b to take it. It
    # went out at once, ahead of that PUBACK.
    a, b = cluster(2)
    sub = clients.paho(b.port, "sub-b")
    sub.subscribe("to-b", 1)
    wait_remote_routes(a, 1)
    first = clients.wire(a.port, version=4)
    assert first.connect("pub", **persistent(4)).reason() == 0
    first.send(packet(PUBLISH, 0x04, string("to-b") + struct.pack("!H", 7) + b"once"))
    assert first.expect(PUBREC).packet_id() == 7
    first.close()
    again = clients.wire(a.port, version=4)
    assert again.connect("pub", **persistent(4)).session_present
    again.send(packet(PUBLISH, 0x02, string("to-b") + struct.pack("!H", 1) + b"q1") +
               packet(PUBLISH, 0x0C, string("to-b") + struct.pack("!H", 7) + b"once"))
    assert [again.recv().type for _ in range(2)] == [PUBACK, PUBREC]
    assert [m.payload for m in sub.wait_messages(2)] == [b"once", b"q1"]


def test_a_publishers_link_named_properties_travel_as_its_own(cluster, clients):
    """A publisher's user properties named like the node link's own ("sb.link.shared" with no
    group, "sb.link.to" naming one client) are its data, forwarded unaltered (§3.3.2.3.7). They
    used to be read as the link's: the first made every forward malformed and the link reconnect
    and send it again without end, the second delivered to that one client only."""
    a, b = cluster(2)
    planted = [("sb.link.shared", "x"), ("sb.link.to", "2\nvictim"), ("sb.link", "0")]
    subscribers = []
    for cid in ("victim", "other"):
        w = clients.wire(b.port, 5)
        assert w.connect(cid).reason() == 0
        w.subscribe(1, ("planted/#", sub_options(1)))
        subscribers.append(w)
    wait_remote_routes(a, 1)
    publisher = clients.wire(a.port, 5)
    assert publisher.connect("planter").reason() == 0
    publisher.publish("planted/1", b"one", qos=1, packet_id=1, retain=True,
                      properties=props(*(p_pair(USER_PROPERTY, k, v) for k, v in planted)))
    assert publisher.expect(PUBACK).packet_id() == 1
    publisher.publish("planted/2", b"two", qos=1, packet_id=2)
    assert publisher.expect(PUBACK).packet_id() == 2
    for w in subscribers:
        first = w.expect_message()
        w.ack(PUBACK, first.packet_id)
        assert (first.payload, first.props.get(USER_PROPERTY)) == (b"one", planted)
        second = w.expect_message()
        assert second.payload == b"two" and USER_PROPERTY not in second.props
    assert "lost" not in a.log(), a.log()  # the link was never lost


def test_a_publish_at_the_packet_size_limit_crosses_to_another_node(cluster, clients):
    """A forward is the publisher's packet and the link's properties: over the node's
    max_packet_bytes when the publisher's was just under it. The receiving node refused it and
    closed the link, which sent it again without end."""
    a, b = cluster(2, config="[limits]\nmax_packet_bytes = 4096\n")
    on_b = clients.wire(b.port, 5)
    assert on_b.connect("big-sub").reason() == 0
    on_b.subscribe(1, ("big/#", sub_options(1)))
    wait_remote_routes(a, 1)
    publisher = clients.wire(a.port, 5)
    assert publisher.connect("big-pub").reason() == 0
    payload = b"x" * 4080  # the PUBLISH is 4,093 bytes, the forward 4,107
    publisher.publish("big/1", payload, qos=1, packet_id=1)
    assert publisher.expect(PUBACK).packet_id() == 1
    m = on_b.expect_message()
    assert m.payload == payload


def test_a_retained_message_older_than_what_went_out_live_is_not_sent_after_it(cluster, clients):
    # The SUBACK waits for Redis (frozen here: until the call times out); the node routes to the
    # new subscription meanwhile. A live "v2" sent then is newer than the retained "v1": the
    # client ends with v2, not with v1 sent after it as the retained message (§4.6).
    (a,) = cluster(1)
    publisher = clients.wire(a.port, version=4)
    assert publisher.connect("pub").reason() == 0
    publisher.publish("state", b"v1", retain=True)
    subscriber = clients.wire(a.port, version=4)
    assert subscriber.connect("sub").reason() == 0
    wait_for(lambda: a.metric("sb_broker_retained_messages") == 1, what="v1 retained")
    cluster.redis.signal(signal.SIGSTOP)
    try:
        subscriber.send(packet(SUBSCRIBE, 2, struct.pack("!H", 1) + string("state") + b"\x00"))
        wait_for(lambda: a.metric("sb_broker_subscriptions") == 1, what="the route in place")
        publisher.publish("state", b"v2")
        got = []
        while (p := subscriber.recv(timeout=10)).type != SUBACK:
            got.append(p.message().payload)
    finally:
        cluster.redis.signal(signal.SIGCONT)
    assert got == [b"v2"]
    publisher.publish("state", b"v3")
    assert subscriber.expect_message().payload == b"v3"  # no v1 in between


def test_a_peers_routes_are_read_again_only_after_they_changed(cluster, clients):
    # Besides the route events, every 10 heartbeats (1 s here) each node reads the routes hash of
    # each other node whose routes-version moved, to catch up on what no event brought (routes
    # rewritten after an outage). While nothing changes, nothing is read: this costs nothing per
    # route. 2.5 s without a read are two of those rounds and a half. A long node timeout, so
    # that a stalled heartbeat on a loaded machine is no leave and join (which reads everything).
    a, b = cluster(2, node_timeout_ms=30000)
    sub = clients.paho(b.port, "sub")
    reads_of_b = ("HGETALL", f"sb:routes:{b.name}")
    with redis_monitor(cluster.redis) as monitor:
        sub.subscribe("r/1", 0)  # moves b's version: the next round reads b's hash, once
        wait_remote_routes(a, 1)
        wait_for(lambda: monitor.commands(*reads_of_b), what="a read of b's routes")
        since = time.monotonic()
        wait_for(lambda: len(monitor.commands(*reads_of_b)) == 1 and time.monotonic() > since + 2.5,
                 timeout=5, what="2.5 s without another read of b's routes")
        sub.subscribe("r/2", 0)
        wait_remote_routes(a, 2)
        wait_for(lambda: len(monitor.commands(*reads_of_b)) == 2, what="a read after the change")
    assert not monitor.commands("HGETALL", f"sb:routes:{a.name}")  # a's never moved


def test_a_node_whose_clock_is_behind_joins(cluster, clients):
    """Liveness is judged on Redis's clock: a node 30 s behind the others is one of them, and
    messages cross to and from it."""
    a, = cluster(1)
    late, = cluster(1, names=["late"], env=clock_off_by(-30))  # returns once both see both
    on_late = clients.paho(late.port, "sub-late")
    on_late.subscribe("t/late", 1)
    on_a = clients.paho(a.port, "sub-a")
    on_a.subscribe("t/a", 1)
    wait_remote_routes(a, 1)
    wait_remote_routes(late, 1)
    clients.paho(a.port, "pub-a").publish("t/late", "to late", 1)
    clients.paho(late.port, "pub-late").publish("t/a", "from late", 1)
    assert [m.payload for m in on_late.wait_messages(1)] == [b"to late"]
    assert [m.payload for m in on_a.wait_messages(1)] == [b"from late"]


def test_each_node_gets_one_copy_and_fans_out_itself(cluster, clients):
    a, b = cluster(2)
    subscribers = [clients.paho(b.port, f"fan-{i}") for i in range(5)]
    for s in subscribers:
        s.subscribe("news/#", 1)
    wait_remote_routes(a, 1)  # five subscriptions, one route
    publisher = clients.paho(a.port, "pub")
    for i in range(10):
        publisher.publish("news/today", f"n{i}", 1)
    for s in subscribers:
        assert [m.payload.decode() for m in s.wait_messages(10)] == [f"n{i}" for i in range(10)]
    assert a.metric("sb_broker_messages_forwarded_total") == 10


def test_unsubscribe_withdraws_the_route_with_the_last_subscriber(cluster, clients):
    a, b = cluster(2)
    first = clients.paho(b.port, "first")
    second = clients.paho(b.port, "second")
    first.subscribe("alerts/#", 1)
    second.subscribe("alerts/#", 1)
    wait_remote_routes(a, 1)
    first.unsubscribe("alerts/#")
    # Still one subscriber on b: the route stays (counted, not withdrawn per subscriber).
    publisher = clients.paho(a.port, "pub")
    publisher.publish("alerts/fire", "1", 1)
    assert second.wait_messages(1)[0].payload == b"1"
    assert b.metric(LOCAL_ROUTES) == 1
    second.unsubscribe("alerts/#")
    wait_remote_routes(a, 0)
    assert b.metric(LOCAL_ROUTES) == 0
    forwarded = a.metric("sb_broker_messages_forwarded_total")
    publisher.publish("alerts/fire", "2", 1)
    assert a.metric("sb_broker_messages_forwarded_total") == forwarded


def test_a_subscription_is_in_redis_at_its_suback_and_reaches_every_node(cluster, clients):
    # SUBACK waits for Redis to have the route and to have published its event (asserted right
    # after the SUBACK); the other nodes apply the event as they read it, a moment later.
    a, b = cluster(2)
    publisher = clients.paho(a.port, "pub")
    for i in range(20):
        sub = clients.paho(b.port, f"late-{i}")
        sub.subscribe(f"fresh/{i}", 1)
        assert cluster.redis.command("HEXISTS", f"sb:routes:{b.name}", f"fresh/{i}") == "1"
        wait_for(lambda: a.metric(REMOTE_ROUTES) == i + 1, timeout=2,
                 what=f"route {i} on {a.name}")
        publisher.publish(f"fresh/{i}", "x", 1)
        assert sub.wait_messages(1)[0].topic == f"fresh/{i}"


def test_load_across_nodes_loses_nothing(cluster, tmp_path):
    # switchboard-bench with its subscribers on one node and its publishers on the other: every
    # QoS 1 message crosses a link, none is lost, duplicated or reordered.
    a, b = cluster(2)
    result, _ = run_bench(tmp_path, b.port, "pairs", "--clients", "8", "--qos", "1",
                          "--publisher-target", f"127.0.0.1:{a.port}", "--duration", "1",
                          "--warmup", "0.3")
    assert result["sent"] > 1000
    assert result["received"] == result["expected"] == result["sent"]
    assert (result["lost"], result["duplicates"], result["reordered"]) == (0, 0, 0)
    assert a.metric("sb_broker_messages_forwarded_total") >= result["sent"]
    assert b.metric("sb_broker_messages_forwarded_total") == 0


def test_retained_messages_reach_every_node(cluster, clients):
    a, b, c = cluster(3)
    publisher = clients.paho(a.port, "pub")
    publisher.publish("status/door", "open", 1, retain=True)
    publisher.publish("status/light", "on", 1, retain=True)
    for node in (b, c):
        node.wait_metric("sb_broker_retained_messages", 2)
    reader = clients.paho(c.port, "reader")
    reader.subscribe("status/#", 1)
    got = reader.wait_messages(2)
    assert sorted((m.topic, m.payload, m.retain) for m in got) == [
        ("status/door", b"open", True), ("status/light", b"on", True)]

    # A node that joins later loads them from Redis.
    (d,) = cluster(1, names=["n4"])
    d.wait_metric("sb_broker_retained_messages", 2)
    late = clients.paho(d.port, "late")
    late.subscribe("status/door", 0)
    assert late.wait_messages(1)[0].payload == b"open"

    # Deleted on one node (empty payload), gone everywhere.
    clients.paho(b.port, "deleter").publish("status/door", "", 1, retain=True)
    for node in (a, c, d):
        node.wait_metric("sb_broker_retained_messages", 1)
    assert cluster.redis.command("HKEYS", "sb:retained") == "status/light"


def test_an_expired_retained_message_goes_from_memory_and_redis_unasked(cluster, clients):
    """Not only when a subscription's filter comes across it: a topic retained once with an
    expiry and never again (a device's, say) would otherwise stay forever."""
    (a,) = cluster(1)
    publish_expiring_retained(clients, a.port, "exp")
    wait_for(lambda: cluster.redis.command("HKEYS", "sb:retained") == "exp/long", timeout=5,
             what="the expired one deleted from Redis")
    assert a.metric("sb_broker_retained_messages") == 1


def test_a_retained_message_that_expired_in_redis_is_not_loaded_again(cluster, clients):
    """Redis keeps a retained message with the wall-clock time it expires: a node that starts
    after that time neither loads nor delivers it (it used to get its whole interval again), and
    deletes it from Redis."""
    (a,) = cluster(1)
    publish_expiring_retained(clients, a.port, "exp")
    wait_for(lambda: cluster.redis.command("HLEN", "sb:retained") == "2", what="both in Redis")
    a.signal(signal.SIGKILL)  # before it can remove the expired one itself
    a.proc.wait()
    cluster.nodes.remove(a)
    # Let the 1 s one expire: there is no event to wait for, only time; the checks below are that
    # it is then NOT loaded or delivered.
    time.sleep(1.1)
    assert cluster.redis.command("HLEN", "sb:retained") == "2"
    (b,) = cluster(1, names=["late"])
    b.wait_metric("sb_broker_retained_messages", 1)
    expect_only_the_lasting_retained(clients, b.port, "exp")
    wait_for(lambda: cluster.redis.command("HKEYS", "sb:retained") == "exp/long",
             what="the expired one deleted from Redis")


def test_a_retained_message_stored_with_an_interval_only_gets_its_expiry_time(cluster, clients):
    """A retained message stored by a build before expiry times were (the PUBLISH alone, with its
    Message Expiry Interval) had its interval counted afresh at every load, and came back to life
    at each restart. The first node to load it stores the time it expires instead."""
    def redis_cli(*args, value=None):  # binary values in and out
        return subprocess.run(["redis-cli", "-p", str(cluster.redis.port), *args], input=value,
                              check=True, capture_output=True, timeout=5).stdout

    old = packet(PUBLISH, 0x01, string("old/t") + props(p_u32(MESSAGE_EXPIRY_INTERVAL, 2)) + b"x")
    redis_cli("-x", "HSET", "sb:retained", "old/t", value=old)
    (a,) = cluster(1)
    a.wait_metric("sb_broker_retained_messages", 1)
    # The format with the time: a marker byte 1 first (backend/message.h).
    wait_for(lambda: redis_cli("HGET", "sb:retained", "old/t").startswith(b"\x01"),
             what="it stored again with the time it expires")
    a.signal(signal.SIGKILL)  # before it can remove the message itself once expired
    a.proc.wait()
    cluster.nodes.remove(a)
    # No event to wait for, only time: past the 2 s, the message is NOT loaded.
    time.sleep(2.1)
    (b,) = cluster(1, names=["late"])
    wait_for(lambda: cluster.redis.command("HLEN", "sb:retained") == "0",
             what="the expired one deleted from Redis")
    assert b.metric("sb_broker_retained_messages") == 0


def test_a_peer_whose_record_cannot_be_read_is_not_taken_for_gone(cluster, clients):
    """Each heartbeat, a node reads every live peer's record (HMGET). A read that fails (here the
    record has the wrong type, so Redis answers with an error) says nothing about the peer: it
    stays a peer, with its routes. It used to be taken for gone: its routes withdrawn, and its
    sessions adopted while it lived."""
    a, b = cluster(2)
    sub = clients.wire(b.port)
    sub.connect("far")
    sub.subscribe(1, ("peer/t", 0))
    wait_remote_routes(a, 1)
    key = f"sb:node:{b.name}"
    with redis_monitor(cluster.redis) as monitor:
        cluster.redis.command("SET", key, "not a hash")  # one command: never absent meanwhile
        reads = len(monitor.commands("HMGET", key))
        wait_for(lambda: len(monitor.commands("HMGET", key)) >= reads + 3,
                 what="three of a's reads of b's record refused")
    clients.paho(a.port, "pub").publish("peer/t", "still routed", 0)
    assert sub.expect_message().payload == b"still routed"
    assert f"node {b.name} left" not in a.log()
    assert a.metric(REMOTE_ROUTES) == 1


def test_stored_expiry_times_are_on_redis_clock(cluster, clients):
    """A node whose wall clock is 30 s behind stores a retained message's expiry time on Redis's
    clock, as heartbeats are judged: a node that loads it later gives it what it has left, not
    30 s less (nor, from a node ahead, more)."""
    (late,) = cluster(1, names=["late"], env=clock_off_by(-30))
    pub = clients.wire(late.port)
    pub.connect("pub")
    pub.publish("skew/t", b"x", qos=1, packet_id=1, retain=True,
                properties=props(p_u32(MESSAGE_EXPIRY_INTERVAL, 60)))
    pub.expect(PUBACK)
    wait_for(lambda: cluster.redis.command("HLEN", "sb:retained") == "1", what="it in Redis")
    (b,) = cluster(1, names=["b"])
    b.wait_metric("sb_broker_retained_messages", 1)
    s = clients.wire(b.port)
    s.connect("sub")
    s.subscribe(1, ("skew/t", 1))
    m = s.expect_message()
    assert m.topic == "skew/t" and m.props[MESSAGE_EXPIRY_INTERVAL] >= 50


@both_versions
def test_takeover_from_another_node_keeps_the_session_and_its_queue(cluster, clients, version):
    a, b, c = cluster(3)
    first = clients.wire(a.port, version)
    assert first.connect("roamer", **persistent(version)).reason() == 0
    assert first.subscribe(1, ("jobs/#", sub_options(1))).suback_codes() == [1]
    first.disconnect()
    a.wait_connections(0)
    wait_remote_routes(b, 1)

    # Queued on a while the client is away; each PUBACK means a has the message.
    publisher = clients.paho(b.port, "pub")
    for i in range(5):
        publisher.publish(f"jobs/{i}", f"job{i}", 1)

    second = clients.wire(c.port, version)
    ack = second.connect("roamer", **persistent(version))
    assert ack.reason() == 0 and ack.session_present
    got = [second.expect_message() for _ in range(5)]
    assert [m.payload for m in got] == [f"job{i}".encode() for i in range(5)]
    for m in got:
        second.ack(PUBACK, m.packet_id)

    # The subscription moved with the session: it is c's route now, and a holds nothing.
    a.wait_metric("sb_broker_sessions", 0)
    wait_for(lambda: a.metric(LOCAL_ROUTES) == 0 and c.metric(LOCAL_ROUTES) == 1,
             what="the route moved from a to c")
    assert a.metric(HANDED_OUT) == 1 and c.metric(TAKEN_IN) == 1
    assert cluster.redis.command("GET", "sb:owner:roamer") == c.name
    publisher.publish("jobs/after", "later", 1)
    assert second.expect_message().payload == b"later"


def test_takeover_of_a_connected_client_across_nodes(cluster, clients):
    a, b, c = cluster(3)
    watcher = clients.paho(b.port, "watcher")
    watcher.subscribe("wills/#", 1)
    wait_remote_routes(a, 1)

    old = clients.wire(a.port, 5)
    expiry = props(p_u32(SESSION_EXPIRY_INTERVAL, 300))
    ack = old.connect("mover", clean=False, properties=expiry,
                      will={"topic": "wills/mover", "payload": "gone", "qos": 1})
    assert ack.reason() == 0
    old.subscribe(1, ("work/#", sub_options(2)))
    wait_remote_routes(c, 2)
    publisher = clients.paho(c.port, "pub")
    publisher.publish("work/1", "w1", 1)
    publisher.publish("work/2", "w2", 2)
    # Both in flight and unacknowledged on the old connection.
    in_flight = [old.expect_message(), old.expect_message()]
    old.ack(PUBREC, in_flight[1].packet_id)
    assert old.expect(PUBREL).packet_id() == in_flight[1].packet_id

    new = clients.wire(b.port, 5)
    ack = new.connect("mover", clean=False, properties=expiry)
    assert ack.reason() == 0 and ack.session_present
    closing = old.expect_closed()
    assert [(p.type, p.reason()) for p in closing] == [(DISCONNECT, 0x8E)]
    # Its will, as for any takeover without a will delay (MQTT 5.0 §3.1.3.2.2).
    assert watcher.wait_messages(1)[0].payload == b"gone"

    # What was in flight is repeated with its identifiers: the QoS 1 PUBLISH (DUP), then the
    # PUBREL of the QoS 2 flow that was past PUBREC.
    resent = new.expect_message()
    assert (resent.packet_id, resent.payload, resent.dup) == (in_flight[0].packet_id, b"w1", True)
    assert new.expect(PUBREL).packet_id() == in_flight[1].packet_id
    new.ack(PUBACK, resent.packet_id)
    new.ack(PUBCOMP, in_flight[1].packet_id)
    publisher.publish("work/3", "w3", 1)
    assert new.expect_message().payload == b"w3"


def test_clean_start_on_another_node_ends_the_old_session(cluster, clients):
    a, b = cluster(2)
    old = clients.wire(a.port, 5)
    assert old.connect("cleaner", **persistent(5)).reason() == 0
    old.subscribe(1, ("x/#", sub_options(1)))
    wait_remote_routes(b, 1)
    new = clients.wire(b.port, 5)
    ack = new.connect("cleaner", clean=True)
    assert ack.reason() == 0 and not ack.session_present
    assert [(p.type, p.reason()) for p in old.expect_closed()] == [(DISCONNECT, 0x8E)]
    a.wait_metric("sb_broker_sessions", 0)
    wait_remote_routes(b, 0)
    assert a.metric(HANDED_OUT) == 0


def next_new_message(wire, seen):
    """The next PUBLISH whose payload has not arrived before. One that arrives again is
    acknowledged and passed over: a message published while its subscriber's session moves
    between nodes can reach it twice (the cluster delivers at least once; Shard::StartMove)."""
    while True:
        m = wire.expect_message()
        if m.payload not in seen:
            seen.add(m.payload)
            return m
        wire.ack(PUBACK, m.packet_id)


def settle(wire, seen):
    """A PINGREQ's answer: what came before it was processed. Messages that arrive again on the
    way are acknowledged (see next_new_message)."""
    wire.send(packet(PINGREQ, 0, b""))
    while (p := wire.recv()) is not None and p.type == PUBLISH:
        assert p.message().payload in seen, f"unexpected {p}"
        wire.ack(PUBACK, p.message().packet_id)
    assert p is not None and p.type == PINGRESP, f"expected PINGRESP, got {p}"


def test_a_client_roaming_over_every_node_keeps_its_session(cluster, clients):
    nodes = cluster(3)
    publisher = clients.paho(nodes[0].port, "pub")
    wire = clients.wire(nodes[0].port, 5)
    assert wire.connect("nomad", **persistent(5)).reason() == 0
    wire.subscribe(1, ("nomad/inbox", sub_options(1)))
    wait_remote_routes(nodes[1], 1)
    seen = set()
    for hop in range(1, 7):
        node = nodes[hop % 3]
        publisher.publish("nomad/inbox", f"hop{hop}", 1)
        live = next_new_message(wire, seen)
        assert live.payload == f"hop{hop}".encode()
        wire.ack(PUBACK, live.packet_id)
        settle(wire, seen)  # the PUBACK is processed: nothing is left in flight
        wire.close()
        publisher.publish("nomad/inbox", f"away{hop}", 1)
        wire = clients.wire(node.port, 5)
        ack = wire.connect("nomad", **persistent(5))
        assert ack.reason() == 0 and ack.session_present, f"hop {hop} to {node.name}"
        queued = next_new_message(wire, seen)
        assert queued.payload == f"away{hop}".encode()
        wire.ack(PUBACK, queued.packet_id)
    # The last hop was back to the publisher's node: its session and the nomad's are all there is.
    assert [n.metric("sb_broker_sessions") for n in nodes] == [2, 0, 0]


def test_messages_published_while_a_session_moves_all_reach_it(cluster, clients):
    """Publishers on every node publish at QoS 1 without pause while a persistent subscriber hops
    from node to node: every message a publisher had acknowledged reaches the subscriber. The
    moment a session leaves a node, that node's routes for it are gone, and the new node's may
    not have reached every node yet: without the old node redirecting what still arrives there,
    such messages matched nothing and were lost."""
    nodes = cluster(3)
    wire = clients.wire(nodes[0].port, 5)
    assert wire.connect("mover", **persistent(5)).reason() == 0
    wire.subscribe(1, ("moving/#", sub_options(1)))
    for n in nodes[1:]:
        wait_remote_routes(n, 1)
    publishers = [clients.paho(n.port, f"pub-{n.name}") for n in nodes]
    acked, failures, stop = [], [], threading.Event()

    def publish_until_stopped(i, publisher):
        k = 0
        try:
            while not stop.is_set():
                publisher.publish(f"moving/{i}", f"{i}-{k}", 1)  # returns once acknowledged
                acked.append(f"{i}-{k}".encode())
                k += 1
        except Exception as e:  # noqa: BLE001 - reported by the test's thread below
            failures.append(e)

    threads = [threading.Thread(target=publish_until_stopped, args=(i, p), daemon=True)
               for i, p in enumerate(publishers)]
    for t in threads:
        t.start()
    seen = set()
    try:
        for hop in range(1, 10):
            for _ in range(30):  # some of every publisher's messages between two hops
                m = next_new_message(wire, seen)
                wire.ack(PUBACK, m.packet_id)
            wire.close()
            wire = clients.wire(nodes[hop % 3].port, 5)
            ack = wire.connect("mover", **persistent(5))
            assert ack.reason() == 0 and ack.session_present, f"hop {hop}"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    missing = set(acked) - seen
    while missing:
        try:
            m = next_new_message(wire, seen)
        except socket.timeout:
            raise AssertionError(f"{len(missing)} of {len(acked)} acknowledged messages never "
                                 f"arrived, e.g. {sorted(missing)[:5]}") from None
        wire.ack(PUBACK, m.packet_id)
        missing.discard(m.payload)
    assert not failures, failures
    per_publisher = collections.Counter(p[:1] for p in acked)
    assert len(per_publisher) == 3 and min(per_publisher.values()) > 30, per_publisher
    redirected = sum(n.metric("sb_broker_messages_redirected_total") for n in nodes)
    assert redirected > 0, "no message was published while the session moved"
    # The moves end: the nodes it left withdraw their routes, and once the others know, a
    # message from every node reaches the session once.
    for n in nodes[1:]:
        wait_for(lambda: n.metric(LOCAL_ROUTES) == 0 and n.metric(REMOTE_ROUTES) == 1,
                 what=f"{n.name} routing to {nodes[0].name} only")
    for i, p in enumerate(publishers):
        p.publish(f"moving/{i}", f"last-{i}", 1)
    last = set()
    for _ in publishers:
        m = next_new_message(wire, seen)
        wire.ack(PUBACK, m.packet_id)
        last.add(m.payload)
    assert last == {b"last-0", b"last-1", b"last-2"}
    wire.ping()  # the next packet: nothing arrives twice


def test_simultaneous_connects_on_two_nodes_leave_one_owner(cluster, clients):
    a, b, c = cluster(3)
    seed = clients.wire(a.port, 5)
    assert seed.connect("contested", **persistent(5)).reason() == 0
    seed.subscribe(1, ("contested/#", sub_options(1)))
    wires = [clients.wire(n.port, 5) for n in (b, c)]
    for w in wires:  # both CONNECTs in flight at once
        w.send(connect_packet("contested", version=5, **persistent(5)))
    acks = [w.expect(CONNACK) for w in wires]
    assert all(ack.reason() == 0 for ack in acks)
    # Both were accepted one after the other: the first is taken over by the second.
    survivors = []
    for w in wires:
        try:
            if w.ping():
                survivors.append(w)
        except (AssertionError, OSError):
            pass
    assert len(survivors) == 1
    owner = cluster.redis.command("GET", "sb:owner:contested")
    holder = b if survivors[0] is wires[0] else c
    assert owner == holder.name
    wait_for(lambda: [n.metric("sb_broker_sessions") for n in (a, b, c)].count(1) == 1,
             what="one session in the whole cluster")
    assert holder.metric("sb_broker_sessions") == 1


def test_shared_subscription_delivers_each_message_once_across_nodes(cluster, clients):
    a, b, c = cluster(3)
    members = [clients.paho(a.port, "m-a1"), clients.paho(a.port, "m-a2"),
               clients.paho(b.port, "m-b"), clients.paho(c.port, "m-c")]
    for m in members:
        m.subscribe("$share/workers/tasks/#", 1)
    for node in (a, b, c):
        wait_remote_routes(node, 2)
    publishers = [clients.paho(a.port, "p-a"), clients.paho(b.port, "p-b")]
    sent = []
    for i in range(150):
        for j, p in enumerate(publishers):
            payload = f"{j}-{i}"
            p.publish(f"tasks/{j}", payload, 1)
            sent.append(payload)
    wait_for(lambda: sum(len(m.messages) for m in members) >= len(sent), timeout=10,
             what="every task delivered")
    received = collections.Counter(msg.payload.decode() for m in members for msg in m.messages)
    assert set(received) == set(sent)
    assert max(received.values()) == 1, [k for k, v in received.items() if v > 1][:5]
    # Spread over all members, cluster-wide: each gets a fair part (a quarter, give or take).
    counts = [len(m.messages) for m in members]
    assert min(counts) >= len(sent) // 8, counts


def test_a_node_that_leaves_takes_its_routes_with_it(cluster, clients):
    a, b, c = cluster(3)
    clients.paho(c.port, "on-c").subscribe("leaving/#", 1)
    clients.paho(b.port, "on-b").subscribe("staying/#", 1)
    wait_remote_routes(a, 2)
    c.stop()  # graceful: it leaves at once
    wait_remote_routes(a, 1, timeout=3)
    wait_for(lambda: a.metric("sb_broker_cluster_nodes") == 2, what="c gone from a's view")
    assert cluster.redis.command("EXISTS", f"sb:routes:{c.name}") == "0"


def test_a_node_shut_down_publishes_its_clients_wills_on_the_others(cluster, clients):
    """SIGTERM closes every client as any close by the server does: their wills are published
    (mosquitto does the same), and reach the other nodes' subscribers before the node leaves."""
    a, b = cluster(2)
    watcher = clients.paho(b.port, "watcher")
    watcher.subscribe("status/#", 1)
    wait_remote_routes(a, 1)
    for version in (4, 5):
        device = clients.wire(a.port, version)
        will = {"topic": f"status/{version}", "payload": b"offline", "qos": 1}
        assert device.connect(f"device-{version}", will=will).reason() == 0
    assert a.stop() == 0
    got = watcher.wait_messages(2)
    assert sorted((m.topic, m.payload) for m in got) == [("status/4", b"offline"),
                                                        ("status/5", b"offline")]


def test_a_killed_node_leaves_by_timeout_and_the_others_carry_on(cluster, clients):
    a, b, c = cluster(3)
    listener = clients.paho(b.port, "listener")
    listener.subscribe("feed/#", 1)
    victim = clients.paho(c.port, "victim-sub")
    victim.subscribe("feed/#", 1)
    wait_remote_routes(a, 2)
    publisher = clients.paho(a.port, "feeder")
    for i in range(20):
        publisher.publish("feed/x", f"before{i}", 1)
    c.signal(signal.SIGKILL)
    c.proc.wait()
    # While c is dead but not yet timed out, publishes that c's routes match cannot be taken
    # by c; they still reach b, and the publisher is acknowledged once c is declared gone.
    for i in range(20):
        publisher.publish("feed/x", f"after{i}", 1)
    wait_for(lambda: a.metric("sb_broker_cluster_nodes") == 2, timeout=5,
             what="the killed node gone from a's view")
    wait_remote_routes(a, 1)
    got = [m.payload.decode() for m in listener.wait_messages(40, timeout=10)]
    assert got == [f"before{i}" for i in range(20)] + [f"after{i}" for i in range(20)]


def test_metrics_show_the_cluster(cluster, clients):
    a, b = cluster(2)
    m = a.metrics()
    assert m["sb_broker_cluster_redis_up"] == 1
    assert m["sb_broker_cluster_nodes"] == 2
    for key in (REMOTE_ROUTES, LOCAL_ROUTES, HANDED_OUT, TAKEN_IN,
                "sb_broker_messages_forwarded_total",
                "sb_broker_messages_received_from_nodes_total"):
        assert key in m, key


def test_two_nodes_with_one_name_are_told(cluster, tmp_path, processes):
    """A second node started under a name already in the cluster (a copied configuration)
    overwrites the first's routes and takes its session requests: both say so, in their logs and
    in /metrics, until one is gone."""
    (a,) = cluster(1, names=["n1"])
    assert a.metric("sb_broker_cluster_node_name_shared") == 0
    (tmp_path / "twin").mkdir()
    twin = Broker(tmp_path / "twin", CLUSTER_CONFIG.format(node_timeout_ms=1000), "n1",
                  extra_args=("--redis", cluster.redis.url))
    processes.append(twin)
    for node in (a, twin):
        wait_for(lambda n=node: n.metric("sb_broker_cluster_node_name_shared") == 1,
                 what="the node told")
        assert 'node "n1" is in use by another process too' in node.log()
    twin.stop()
    # Once the twin has been silent for two node timeouts.
    wait_for(lambda: a.metric("sb_broker_cluster_node_name_shared") == 0, timeout=10,
             what="a alone again")


def test_redis_losing_its_keys_takes_no_node_for_gone(cluster):
    """After FLUSHALL (or a restart without persistence, or Redis's clock stepped forward), the
    first node to beat finds itself alone in the live set for a round. Taken for gone, the others
    would find their sessions adopted and exit; a peer leaves only once missing from three rounds
    in a row, and every live one beats again before that."""
    nodes = cluster(3)
    assert cluster.redis.command("FLUSHALL") == "OK"
    wait_for(lambda: cluster.redis.command("ZCARD", "sb:nodes") == "3",
             what="every node beating again")
    wait_meshed(nodes)
    for node in nodes:
        assert node.alive(), node.log()
        assert "left" not in node.log(), node.log()


def test_without_redis_a_node_serves_its_own_clients(cluster, clients):
    a, b = cluster(2)
    cluster.redis.stop()
    wait_for(lambda: a.metric("sb_broker_cluster_redis_up") == 0, what="a notices Redis gone")
    # New connections and subscriptions go on without Redis, on the node itself.
    sub = clients.paho(a.port, "alone-sub")
    sub.subscribe("alone/#", 1)
    clients.paho(a.port, "alone-pub").publish("alone/1", "still", 1)
    assert sub.wait_messages(1)[0].payload == b"still"


def test_redis_back_after_a_long_outage_is_no_departure_of_the_peers(cluster, clients):
    # Every node's heartbeats stop with Redis. When it returns, the first node to beat finds the
    # others silent for longer than the node timeout; that is no departure: links and routes
    # stay, and the messages acknowledged meanwhile arrive. Before, the peer "left": its routes
    # were withdrawn and what its link carried was counted taken and dropped.
    a, b = cluster(2)
    sub = clients.paho(b.port, "far-sub")
    sub.subscribe("far/#", 1)
    wait_remote_routes(a, 1)
    pub = clients.paho(a.port, "near-pub")
    cluster.redis.stop()
    for node in (a, b):
        wait_for(lambda n=node: n.metric("sb_broker_cluster_redis_up") == 0,
                 what=f"{node.name} notices Redis gone")
    time.sleep(2.5)  # the outage itself: longer than the node timeout (1 s)
    cluster.redis.start()
    sent = 0
    deadline = time.monotonic() + 10
    while not all(n.metric("sb_broker_cluster_redis_up") == 1 for n in (a, b)) or sent < 40:
        assert time.monotonic() < deadline, "both nodes back on Redis"
        pub.publish("far/1", f"m{sent}", 1)  # waits for its PUBACK
        sent += 1
    assert [m.payload.decode() for m in sub.wait_messages(sent)] == [f"m{i}" for i in range(sent)]
    assert f"node {b.name} left" not in a.log() and f"node {a.name} left" not in b.log()


def test_a_new_node_is_healthy_only_once_it_routes_to_the_others(cluster, clients,
                                                                   start_broker):
    # /healthz, which a proxy's checks follow, says 503 "joining the cluster" until the node knows
    # the live nodes and their routes: a client sent to it at once reaches subscribers elsewhere.
    # Redis is frozen for the first second of the new node: it joins after that, and is healthy
    # only then (before: at once, knowing nothing).
    (a,) = cluster(1)
    sub = clients.paho(a.port, "sub-a")
    sub.subscribe("to-a", 1)
    wait_for(lambda: a.metric(LOCAL_ROUTES) == 1, what="a's route")
    cluster.redis.signal(signal.SIGSTOP)
    thaw = threading.Timer(1.0, cluster.redis.signal, (signal.SIGCONT,))
    thaw.start()
    try:
        c = start_broker(config=CLUSTER_CONFIG.format(node_timeout_ms=1000), name="late",
                         extra_args=("--redis", cluster.redis.url))
    finally:
        thaw.join()
    assert c.metric(REMOTE_ROUTES) == 1  # when first healthy
    assert "in the cluster with 1 peers" in c.log()
    clients.paho(c.port, "pub-c").publish("to-a", "first", 1)
    assert sub.wait_messages(1)[0].payload == b"first"


def test_the_cluster_catches_up_when_redis_returns(cluster, clients):
    a, b = cluster(2)
    cluster.redis.stop()
    for node in (a, b):
        wait_for(lambda n=node: n.metric("sb_broker_cluster_redis_up") == 0,
                 what=f"{node.name} notices Redis gone")
    # A subscription made while Redis is away: Redis has lost everything (no persistence).
    sub = clients.paho(a.port, "during-sub")
    sub.subscribe("during/#", 1)
    cluster.redis.start()
    for node in (a, b):
        wait_for(lambda n=node: n.metric("sb_broker_cluster_redis_up") == 1, timeout=10,
                 what=f"{node.name} back on Redis")
    # Each node writes its routes back whole, and the others learn them: b forwards to a.
    wait_for(lambda: cluster.redis.command("HEXISTS", f"sb:routes:{a.name}", "during/#") == "1",
             what="a's route rewritten into Redis")
    wait_remote_routes(b, 1, timeout=10)
    clients.paho(b.port, "after-pub").publish("during/1", "caught up", 1)
    assert sub.wait_messages(1)[0].payload == b"caught up"
    # And a node that joins now finds both in Redis and meshes with them.
    (c,) = cluster(1)
    wait_remote_routes(c, 1)
    clients.paho(c.port, "late-pub").publish("during/2", "from the newcomer", 1)
    assert sub.wait_messages(2)[1].payload == b"from the newcomer"


def test_a_stalled_peer_holds_back_the_publishers_feeding_it(cluster, clients):
    # b stops reading (SIGSTOP) but is not declared dead for 30 s. a queues at most
    # link_queue_bytes per link, then stops reading the publishers whose messages go to b, instead
    # of buffering without bound; its other clients are served meanwhile. QoS 0, so that no
    # in-flight window stops the publisher first.
    a, b = cluster(2, node_timeout_ms=30000, config="link_queue_bytes = 65536\n")
    sub = clients.paho(b.port, "stalled-sub")
    sub.subscribe("stall/#", 0)
    wait_remote_routes(a, 1)
    pub = clients.wire(a.port, version=4)
    assert pub.connect("stalled-pub").reason() == 0
    pub.sock.setblocking(False)
    chunk = packet(PUBLISH, 0, string("stall/load") + b"x" * 1024) * 64
    b.signal(signal.SIGSTOP)
    try:
        sent, pending = 0, b""
        while True:
            assert sent < 256 << 20, "a read 256 MiB for a stalled peer without holding back"
            if not select.select([], [pub.sock], [], 2.0)[1]:
                break  # a has not read its publisher for 2 s: held back
            pending = pending or chunk
            n = pub.sock.send(pending)
            pending, sent = pending[n:], sent + n
        assert_serves(a)  # a subscriber and a publisher of its own, on a
    finally:
        b.signal(signal.SIGCONT)
    # b drains its links and a reads its publisher again: a message sent after the backlog
    # arrives.
    pub.sock.setblocking(True)
    pub.sock.settimeout(30)
    pub.send(pending)
    marker_sub = clients.paho(b.port, "marker-sub")
    marker_sub.subscribe("marker", 0)
    wait_remote_routes(a, 2, timeout=30)
    pub.publish("marker", b"after the stall")
    try:
        assert marker_sub.wait_messages(1, timeout=30)[0].payload == b"after the stall"
    except AssertionError:
        print("the flow did not resume:", stall_diagnostics(a, b))
        raise


def stall_diagnostics(*nodes):
    """What the nodes say of their links, queues and held-back publishers."""
    words = ("held", "queue", "link", "forwarded", "received", "dropped")
    return {n.name: {k: v for k, v in n.metrics().items() if any(w in k for w in words)}
            for n in nodes}


@pytest.mark.parametrize("password", [None, b"guess"], ids=["no-password", "wrong-password"])
def test_a_client_cannot_pose_as_a_node(cluster, clients, redis_server, password):
    # A node link skips the session claim, access rules and checks of what it forwards: its
    # client id ("$node/...") is accepted only with the cluster's secret, which nodes read from
    # Redis.
    a, b = cluster(2)
    wait_for(lambda: redis_server.command("EXISTS", "sb:cluster-secret") == "1",
             what="the cluster's secret written")
    c = clients.wire(a.port)
    link_property = props(p_pair(USER_PROPERTY, "sb.link.node", "b"))
    assert c.connect("$node/b/0", password=password, properties=link_property).reason() == 0x87
    assert c.expect_closed() == []
    assert a.metric('sb_broker_connections_rejected_total{reason="not_a_node"}') == 1
    # The nodes' own links, with the secret, carry messages as before.
    on_b = clients.paho(b.port, "sub-b")
    on_b.subscribe("posing/t", 1)
    wait_remote_routes(a, 1)
    clients.paho(a.port, "pub-a").publish("posing/t", "real", 1)
    assert [m.payload for m in on_b.wait_messages(1)] == [b"real"]


def test_a_forward_without_the_links_properties_is_dropped_not_looped(cluster, clients,
                                                                      redis_server):
    """A node of another build (a rolling upgrade) may forward what this one cannot read. The link
    used to be closed for it, and the forward came again first, without end; it is now dropped,
    counted and acknowledged, and the link goes on."""
    (a,) = cluster(1)
    secret = wait_for(lambda: redis_server.command("GET", "sb:cluster-secret"),
                      what="the cluster's secret written")
    link = clients.wire(a.port)
    node_property = props(p_pair(USER_PROPERTY, "sb.link.node", "ghost"))
    assert link.connect("$node/ghost/0", password=secret.encode(),
                        properties=node_property).reason() == 0
    link.publish("t", b"unreadable", qos=1, packet_id=7,
                 properties=props(p_pair(USER_PROPERTY, "sb.link.shared", "no-newline")))
    assert link.expect(PUBACK).packet_id() == 7
    assert a.metric('sb_broker_messages_dropped_total{reason="malformed_forward"}') == 1
    link.ping()  # still open
    assert "forwarded a message without the link's properties" in a.log()


def test_a_single_broker_has_no_node_links(start_broker, clients):
    broker = start_broker()
    c = clients.wire(broker.port, version=4)
    assert c.connect("$node/x/0").reason() == 5  # 3.1.1: not authorized
    assert broker.metric('sb_broker_connections_rejected_total{reason="not_a_node"}') == 1
