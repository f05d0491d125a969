"""A broker's shards (backend/shard.h): one I/O thread each, delivering to each other's sessions
by posting batches. What waits for another shard is bounded (backend/shard_queue.h)."""
import select
import time

from cluster_fixtures import cluster, redis_server, wait_remote_routes  # noqa: F401
from conftest import wait_for
from mqtt_wire import PUBLISH, packet, string
from thread_control import client_id_on, home_shard, thread_stopped

THREADS = 2
SHARD_QUEUE_BYTES = 4 << 20  # backend/shard_queue.h
LOAD = packet(PUBLISH, 0, string("held/load") + b"x" * 1024) * 64


def publish_until_held_back(pub):
    """Publishes QoS 0 1 KiB messages to held/load until the broker has not read `pub` for 2 s;
    returns the part of a write it had not taken. Fails after 256 MiB or 20 s."""
    pub.sock.setblocking(False)
    sent, pending = 0, b""
    deadline = time.monotonic() + 20
    while True:
        assert sent < 256 << 20, "read 256 MiB for a stalled shard without holding back"
        assert time.monotonic() < deadline, f"still read after 20 s ({sent} bytes)"
        if not select.select([], [pub.sock], [], 2.0)[1]:
            return pending
        pending = pending or LOAD
        n = pub.sock.send(pending)
        pending, sent = pending[n:], sent + n


def assert_queue_full(broker):
    """What waits for the stopped shard is its bound, and at most one read of the publisher more
    (what the broker had read when it stopped reading)."""
    queued = broker.metric("sb_broker_shard_queue_bytes")
    assert SHARD_QUEUE_BYTES < queued <= SHARD_QUEUE_BYTES + (1 << 20), queued


def test_a_stalled_shard_holds_back_the_publishers_feeding_it(start_broker, clients):
    # Shard 1's thread stops. A publisher of shard 0 whose messages go to a session of shard 1
    # stops being read once kShardQueueBytes (4 MiB) wait for that shard, rather than its messages
    # piling up for it without bound; shard 0's other clients are served meanwhile. QoS 0, so
    # that no in-flight window stops the publisher first. Every client connects first: a new
    # connection may be accepted by the stopped thread. The publisher's keep alive (1 s) runs out
    # while it is held back: the bytes waiting in its socket keep it alive, unread.
    broker = start_broker(threads=THREADS)
    held = clients.wire(broker.port, version=4)
    assert held.connect(client_id_on(1, THREADS, "held")).reason() == 0
    held.subscribe(1, ("held/#", 0))  # and never reads again
    pub = clients.wire(broker.port, version=4)
    assert pub.connect(client_id_on(0, THREADS, "pub"), keepalive=1).reason() == 0
    bystander = clients.paho(broker.port, client_id_on(0, THREADS, "bystander"))
    bystander.subscribe("bystander/t", 0)
    with thread_stopped(broker, "shard-1"):
        pub.ping()  # the publisher is served: its shard runs
        pending = publish_until_held_back(pub)
        assert_queue_full(broker)
        assert broker.metric("sb_broker_publishers_held_back_total") == 1
        bystander.publish("bystander/t", b"served")
        assert bystander.wait_messages(1)[0].payload == b"served"
    # Shard 1 takes its backlog and the publisher is read again: what it sends after the backlog
    # reaches the bystander.
    pub.sock.setblocking(True)
    pub.sock.settimeout(30)
    pub.send(pending)
    pub.send(packet(PUBLISH, 0, string("bystander/t") + b"after the stall"))
    wait_for(lambda: len(bystander.messages) == 2, timeout=30, what="the message after the stall")
    assert bystander.messages[1].payload == b"after the stall"


def test_a_stalled_shard_holds_back_the_node_links_feeding_it(cluster, clients):
    # The same across nodes. n1's shard 1 stops: the link that brings n2's messages for its
    # session stops being read once 4 MiB wait for that shard, n2's link to n1 congests in turn
    # (link_queue_bytes), and n2 stops reading its publisher. n2's links to n1 have their sessions
    # on n1's shard 0, which runs on.
    assert [home_shard(f"$node/n2/{i}", THREADS) for i in range(THREADS)] == [0] * THREADS
    n2, n1 = cluster(2, names=["n2", "n1"], threads=THREADS, config="link_queue_bytes = 65536\n")
    held = clients.wire(n1.port, version=4)
    assert held.connect(client_id_on(1, THREADS, "held")).reason() == 0
    held.subscribe(1, ("held/#", 0))  # and never reads again
    wait_remote_routes(n2, 1)
    pub = clients.wire(n2.port, version=4)
    assert pub.connect("pub").reason() == 0
    with thread_stopped(n1, "shard-1"):
        publish_until_held_back(pub)
        assert_queue_full(n1)
        assert n1.metric("sb_broker_publishers_held_back_total") == 1  # the link from n2
        # The publisher, each time the 64 KiB link queue congested on the way, the last for good.
        assert n2.metric("sb_broker_publishers_held_back_total") >= 1
