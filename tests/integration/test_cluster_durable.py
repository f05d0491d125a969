"""Persistent sessions that outlive the crash of their node (issue: the broker cluster; DESIGN.md:
durable sessions): a node records each persistent session in Redis; when it dies, a survivor
adopts its sessions, or a client that comes back first takes its session from the record."""
import contextlib
import re
import signal
import socket
import time

from cluster_fixtures import (LOCAL_ROUTES, REMOTE_ROUTES, cluster, redis_monitor,  # noqa: F401
                              redis_server, wait_remote_routes)
from conftest import wait_for
from mqtt_wire import (CONNACK, DISCONNECT, PUBACK, WILL_DELAY_INTERVAL, connect_packet, p_u32,
                       persistent, props, sub_options)
from proxy_fixtures import FAST_HEALTH, conns, pool, restart_broker, start_proxy  # noqa: F401

RESTORED = "sb_broker_cluster_sessions_restored_total"


def crash(node):
    node.signal(signal.SIGKILL)
    node.proc.wait()


def resume(clients, node, client_id):
    """A 5.0 connection of `client_id` to `node` that resumes its persistent session."""
    w = clients.wire(node.port, 5, timeout=10)
    ack = w.connect(client_id, **persistent(5))
    assert ack.reason() == 0 and ack.session_present
    return w


def routed_anywhere(node, count):
    """True when `node` routes `count` filters, its own or the other nodes'."""
    return node.metric(LOCAL_ROUTES) + node.metric(REMOTE_ROUTES) == count


def receive(wire, n):
    """The next `n` PUBLISH payloads, each acknowledged."""
    payloads = []
    for _ in range(n):
        m = wire.expect_message()
        wire.ack(PUBACK, m.packet_id)
        payloads.append(m.payload.decode())
    return payloads


def recorded(cluster, node, client_id):
    """True if `node` has a record of the session of `client_id` in Redis."""
    return cluster.redis.command("EXISTS", f"sb:session:{node.name}:{client_id}") == "1"


def clean_start_after_crash(cluster, clients, a, b, client_id, connection):
    """Once `a` has recorded the session of `client_id`, kills `a` (and `connection`, its client
    there) and connects `client_id` to `b` with a clean start: no session present."""
    wait_for(lambda: recorded(cluster, a, client_id), what="the session recorded")
    crash(a)
    connection.close()
    again = clients.wire(b.port, 5, timeout=10)
    ack = again.connect(client_id, clean=True)
    assert ack.reason() == 0 and not ack.session_present


def will_watcher(clients, node):
    """A client of `node` subscribed to every will of these tests."""
    w = clients.wire(node.port, 5, timeout=10)
    assert w.connect("will-watcher").reason() == 0
    w.subscribe(1, ("status/#", sub_options(1)))
    return w


def watched_pair(cluster, clients, **kwargs):
    """Two nodes (cluster() arguments in `kwargs`) and a will watcher on the second, its
    subscription known to the first."""
    a, b = cluster(2, **kwargs)
    watcher = will_watcher(clients, b)
    wait_remote_routes(a, 1)
    return a, b, watcher


def with_will(clients, node, client_id, version=5, delay_s=0, clean=False):
    """A client of `node` with a QoS 1 will on status/CLIENT_ID and a persistent session, or
    with `clean` one that ends with the connection."""
    will = {"topic": f"status/{client_id}", "payload": b"offline", "qos": 1}
    if delay_s:
        will["properties"] = props(p_u32(WILL_DELAY_INTERVAL, delay_s))
    w = clients.wire(node.port, version)
    session = {"clean": True} if clean else persistent(version)
    assert w.connect(client_id, will=will, **session).reason() == 0
    return w


def expect_will(watcher, client_id):
    m = watcher.expect_message()
    watcher.ack(PUBACK, m.packet_id)
    assert (m.topic, m.payload) == (f"status/{client_id}", b"offline")


def shut_down_with_a_delayed_will(cluster, clients, delay_s):
    """Two nodes; "dev" on the first with a will delayed `delay_s`, a watcher on the second;
    SIGTERM to the first, whose DISCONNECT (0x8B) "dev" takes as its cue to close. Returns the
    second node, the watcher and when the shutdown began."""
    a, b, watcher = watched_pair(cluster, clients)
    device = with_will(clients, a, "dev", delay_s=delay_s)
    start = time.monotonic()
    a.signal(signal.SIGTERM)
    assert device.expect(DISCONNECT).reason() == 0x8B
    device.close()
    assert a.proc.wait(timeout=5) == 0
    return b, watcher, start


def test_a_delayed_will_outlives_the_node_that_shut_down(cluster, clients):
    """SIGTERM closes the client; its session, with the will waiting for its delay, goes on in
    the node that adopts it, which publishes the will once the delay has passed (it was lost)."""
    b, watcher, start = shut_down_with_a_delayed_will(cluster, clients, delay_s=2)
    expect_will(watcher, "dev")
    elapsed = time.monotonic() - start
    assert 2 <= elapsed < 4, f"will delay 2 s, published after {elapsed:.2f} s"
    assert b.metric(RESTORED) == 1


def test_a_will_waiting_when_its_node_shuts_down_keeps_its_time(cluster, clients):
    """The record says how long the will still waits as of the shutdown, not as of the
    disconnection: the adopter publishes it when it was due."""
    a, b, watcher = watched_pair(cluster, clients)
    with_will(clients, a, "dev", delay_s=3).close()
    gone = time.monotonic()
    a.wait_connections(0)
    time.sleep(1)  # the scenario itself: the shutdown comes a third into the will delay
    assert a.stop() == 0
    expect_will(watcher, "dev")
    elapsed = time.monotonic() - gone
    assert 3 <= elapsed < 3.8, f"will delay 3 s, published after {elapsed:.2f} s"


def test_a_client_back_within_its_will_delay_on_another_node_cancels_the_will(cluster, clients):
    b, watcher, start = shut_down_with_a_delayed_will(cluster, clients, delay_s=2)
    # Adopted first, so that the will is armed there when the client comes back.
    wait_for(lambda: b.metric(RESTORED) == 1, what="the session adopted")
    adopted = time.monotonic()
    back = resume(clients, b, "dev")
    resumed_after = time.monotonic() - start
    assert resumed_after < 2, f"resumed {resumed_after:.2f} s after the shutdown: too late"
    # Past the will delay as armed on b: resuming in time cancelled the will.
    watcher.expect_silence(adopted + 2.5 - time.monotonic())


def test_a_will_cancelled_by_a_resume_without_session_expiry_leaves_no_record(cluster, clients):
    """Resumed by a connection with Session Expiry 0, the session lasts only as long as it: its
    record goes, and with it the will its last connection left, so that no node that adopts
    the session should this one die publishes that will."""
    (a,) = cluster(1)
    with_will(clients, a, "dev", delay_s=1).close()
    wait_for(lambda: recorded(cluster, a, "dev"), what="the session recorded")
    back = clients.wire(a.port, 5)
    ack = back.connect("dev", clean=False)
    assert ack.reason() == 0 and ack.session_present
    wait_for(lambda: not recorded(cluster, a, "dev"), what="the record gone")


def test_a_crashed_nodes_clients_wills_are_published_by_the_node_that_adopts_them(cluster,
                                                                                 clients):
    """The record of a connected client's session carries its will: when the node dies, the
    connection dies with it, so the node that adopts the session publishes the will (after its
    delay, if it has one)."""
    a, b, watcher = watched_pair(cluster, clients)
    with_will(clients, a, "dev-4", version=4)
    with_will(clients, a, "dev-5", delay_s=1)
    for cid in ("dev-4", "dev-5"):
        wait_for(lambda: recorded(cluster, a, cid), what=f"{cid} recorded")
    crash(a)
    expect_will(watcher, "dev-4")
    first = time.monotonic()
    expect_will(watcher, "dev-5")
    waited = time.monotonic() - first
    assert waited >= 0.8, f"dev-5's will delay is 1 s; it came {waited:.2f} s after dev-4's"
    assert b.metric(RESTORED) == 2


def go_offline(clients, node, client_id):
    """A persistent session of `client_id` on `node`, subscribed to inbox/CLIENT_ID at QoS 1,
    its client gone (DISCONNECT)."""
    w = clients.wire(node.port, 5)
    assert w.connect(client_id, **persistent(5)).reason() == 0
    w.subscribe(1, (f"inbox/{client_id}", sub_options(1)))
    w.disconnect()
    node.wait_connections(0)


def test_a_crashed_nodes_clean_session_clients_wills_are_published_at_the_adoption(cluster,
                                                                                   clients):
    """A session that ends with its connection is recorded for its will alone: the adopter
    publishes it, at once even with a delay, as the session ended with the connection. (EMQX
    loses these: emqx/emqx#1667.) The record goes with a normal DISCONNECT."""
    a, b, watcher = watched_pair(cluster, clients)
    with_will(clients, a, "clean-4", version=4, clean=True)
    with_will(clients, a, "clean-5", delay_s=30, clean=True)
    polite = with_will(clients, a, "polite", clean=True)
    for cid in ("clean-4", "clean-5", "polite"):
        wait_for(lambda: recorded(cluster, a, cid), what=f"{cid}'s will recorded")
    polite.disconnect()
    wait_for(lambda: not recorded(cluster, a, "polite"), what="polite's record gone")
    crash(a)
    got = set()
    for _ in range(2):
        m = watcher.expect_message()
        watcher.ack(PUBACK, m.packet_id)
        got.add(m.topic)
    assert got == {"status/clean-4", "status/clean-5"}
    assert b.metric("sb_broker_sessions") == 1  # the watcher's: nothing adopted to keep
    wait_for(lambda: cluster.redis.command("EXISTS", "sb:owner:clean-5") == "0",
             what="the adopted client id let go")
    watcher.expect_silence(0.5)  # not polite's


def test_a_clean_session_client_back_after_a_crash_gets_no_session_and_its_will_goes_out(
        cluster, clients):
    # A long node timeout, so that b's claim, not an adoption, reads the record.
    a, b, watcher = watched_pair(cluster, clients, node_timeout_ms=10_000)
    device = with_will(clients, a, "dev", delay_s=30, clean=True)
    wait_for(lambda: recorded(cluster, a, "dev"), what="the will recorded")
    crash(a)
    device.close()
    again = clients.wire(b.port, 5, timeout=10)
    ack = again.connect("dev", clean=False)  # its session ended with the connection
    assert ack.reason() == 0 and not ack.session_present
    expect_will(watcher, "dev")
    assert not recorded(cluster, a, "dev")


def test_an_offline_session_outlives_its_node(cluster, clients):
    a, b, c = cluster(3)
    go_offline(clients, a, "sleeper")
    wait_remote_routes(b, 1)
    publisher = clients.paho(b.port, "pub")
    for i in range(3):
        publisher.publish("inbox/sleeper", f"before{i}", 1)
    # Each PUBACK means a queued the message; its record has it once Redis does.
    queue = f"sb:session-queue:{a.name}:sleeper"
    wait_for(lambda: cluster.redis.command("LLEN", queue) == "3", what="the queue recorded")

    crash(a)
    # One survivor adopts the session: the subscription is routed again, from there.
    wait_for(lambda: b.metric(RESTORED) + c.metric(RESTORED) == 1, timeout=10,
             what="the session adopted")
    wait_for(lambda: routed_anywhere(b, 1), what="b routing to the adopted session")
    for i in range(2):
        publisher.publish("inbox/sleeper", f"after{i}", 1)

    back = resume(clients, c, "sleeper")
    assert receive(back, 5) == ["before0", "before1", "before2", "after0", "after1"]
    assert cluster.redis.command("GET", "sb:owner:sleeper") == c.name
    assert not recorded(cluster, a, "sleeper")


def test_a_client_back_before_the_node_is_declared_dead_takes_its_record(cluster, clients):
    a, b, c = cluster(3)
    first = clients.wire(a.port, 5)
    assert first.connect("quick", **persistent(5)).reason() == 0
    first.subscribe(1, ("jobs/quick", sub_options(1)))
    wait_for(lambda: recorded(cluster, a, "quick"), what="the session recorded")
    crash(a)
    first.close()
    # At once, while b still counts a as alive: b asks a, gets no answer, reads a's record.
    second = resume(clients, b, "quick")
    assert b.metric(RESTORED) == 1
    wait_for(lambda: routed_anywhere(c, 1), what="c routing to b's session")
    clients.paho(c.port, "pub").publish("jobs/quick", "resumed", 1)
    assert receive(second, 1) == ["resumed"]  # subscribed without subscribing again


def test_subscriptions_made_one_at_a_time_are_appended_to_the_record(cluster, clients):
    """Each SUBSCRIBE or UNSUBSCRIBE appends its change to the record rather than rewriting it
    whole (which cost O(n²) bytes for n subscriptions), and each SUBACK or UNSUBACK still means
    that the record has it: the node crashes right after the last one."""
    a, b = cluster(2)
    key = f"sb:session:{a.name}:many"
    with redis_monitor(cluster.redis) as monitor:
        w = clients.wire(a.port, 5)
        assert w.connect("many", **persistent(5)).reason() == 0
        for i in range(300):
            w.subscribe(i + 1, (f"many/{i}", sub_options(1)))
        for i in range(0, 300, 3):
            w.unsubscribe(i + 1, f"many/{i}")
        w.subscribe(1, ("many/1", sub_options(0)))
        crash(a)
        w.close()

        def writes():
            """The record's writes whole, and its appends."""
            return (monitor.commands("SET", key),
                    [line for line in monitor.commands("EVAL") if f'"{key}"' in line])

        # Each SUBACK or UNSUBACK came after its write reached Redis: 401 of them.
        wait_for(lambda: sum(map(len, writes())) == 401, what="the monitor seeing every write")
        written_whole = writes()[0]
    # The first SUBSCRIBE wrote it, and it was rewritten when the changes outgrew it.
    assert 1 < len(written_whole) <= 4, written_whole

    back = resume(clients, b, "many")
    publisher = clients.paho(b.port, "pub")
    for topic in ("many/0", "many/1", "many/2", "many/3", "many/299"):
        publisher.publish(topic, topic, 1)
    got = []
    for _ in range(3):
        m = back.expect_message()
        if m.qos:
            back.ack(PUBACK, m.packet_id)
        got.append((m.topic, m.qos))
    assert got == [("many/1", 0), ("many/2", 1), ("many/299", 1)]


def test_changes_are_not_appended_to_a_record_that_lost_a_write(cluster, clients):
    """A record that is not as its node last wrote it (a write lost while Redis was unreachable,
    say) takes no appended change: the node writes it whole again at once."""
    a, b = cluster(2)
    key = f"sb:session:{a.name}:lossy"
    with redis_monitor(cluster.redis) as monitor:
        w = clients.wire(a.port, 5)
        assert w.connect("lossy", **persistent(5)).reason() == 0
        w.subscribe(1, ("lossy/1", sub_options(1)))  # the first: written whole
        assert cluster.redis.command("COPY", key, "backup") == "1"
        w.subscribe(2, ("lossy/2", sub_options(1)))  # appended
        # As if the append had been lost: the record as it was before it.
        assert cluster.redis.command("COPY", "backup", key, "REPLACE") == "1"
        w.subscribe(3, ("lossy/3", sub_options(1)))  # refused, so written whole
        wait_for(lambda: len(monitor.commands("SET", key)) == 2, what="the record rewritten")
    crash(a)
    w.close()
    back = resume(clients, b, "lossy")
    publisher = clients.paho(b.port, "pub")
    for i in (1, 2, 3):
        publisher.publish(f"lossy/{i}", f"m{i}", 1)
    assert receive(back, 3) == ["m1", "m2", "m3"]


@contextlib.contextmanager
def out_of_memory(redis):
    """Within it, Redis refuses every write with an error and keeps its connections (maxmemory of
    1 byte, and no eviction, Redis's default policy)."""
    redis.command("CONFIG", "SET", "maxmemory", "1")
    try:
        yield
    finally:
        redis.command("CONFIG", "SET", "maxmemory", "0")


def refusals(redis, command):
    """How many times Redis refused `command` (e.g. "rpush") before running it."""
    stats = redis.command("INFO", "commandstats")
    match = re.search(rf"cmdstat_{command}:.*rejected_calls=(\d+)", stats)
    return int(match.group(1)) if match else 0


def test_a_record_redis_refused_is_written_again_without_a_change(cluster, clients):
    """A whole write of a record that Redis refused while staying connected is made again once
    Redis takes writes, though the session makes no change that would rewrite it: the client
    was told its subscription was taken."""
    a, b = cluster(2)
    w = clients.wire(a.port, 5)
    assert w.connect("refused", **persistent(5)).reason() == 0
    with out_of_memory(cluster.redis):
        # The SUBACK comes after Redis answered the record's write: it refused it.
        assert w.subscribe(1, ("refused/1", sub_options(1))).suback_codes() == [1]
        assert not recorded(cluster, a, "refused")
    wait_for(lambda: recorded(cluster, a, "refused"), what="the record written again")
    crash(a)
    w.close()
    back = resume(clients, b, "refused")
    clients.paho(b.port, "pub").publish("refused/1", "kept", 1)
    assert receive(back, 1) == ["kept"]


def test_a_queued_message_redis_refused_is_written_again(cluster, clients):
    """A message queued for an offline session whose append to the record Redis refused goes
    into the record written whole again once Redis takes writes: its PUBACK said it was taken."""
    a, b = cluster(2)
    go_offline(clients, a, "away")
    key = f"sb:session:{a.name}:away"
    wait_for(lambda: recorded(cluster, a, "away"), what="the offline session recorded")
    size = int(cluster.redis.command("STRLEN", key))
    before = refusals(cluster.redis, "rpush")
    with out_of_memory(cluster.redis):
        clients.paho(a.port, "pub").publish("inbox/away", "kept", 1)
        wait_for(lambda: refusals(cluster.redis, "rpush") > before, what="the append refused")
    wait_for(lambda: int(cluster.redis.command("STRLEN", key)) > size,
             what="the record written again, with the message")
    crash(a)
    back = resume(clients, b, "away")
    assert receive(back, 1) == ["kept"]


def test_a_restarted_node_takes_its_sessions_back(cluster, clients, tmp_path, processes):
    (a,) = cluster(1)
    w = clients.wire(a.port, 5)
    assert w.connect("loyal", **persistent(5)).reason() == 0
    w.subscribe(1, ("news/#", sub_options(1)))
    publisher = clients.paho(a.port, "pub")
    w.disconnect()
    a.wait_connections(1)  # the publisher's
    publisher.publish("news/1", "kept", 1)
    wait_for(lambda: cluster.redis.command("LLEN", f"sb:session-queue:{a.name}:loyal") == "1",
             what="the queue recorded")
    publisher.close()
    crash(a)
    again = restart_broker(a, tmp_path, processes)
    again.wait_metric("sb_broker_sessions", 1)
    w = resume(clients, again, "loyal")
    assert receive(w, 1) == ["kept"]


def listening(clients, port):
    """A wire client connected to `port`, or None while nothing listens there."""
    try:
        return clients.wire(port, 5, timeout=10)
    except ConnectionRefusedError:
        return None


def test_a_client_back_the_moment_its_node_restarts_gets_its_session(cluster, clients, tmp_path,
                                                                    processes):
    """A node back from a crash owns the client ids of its last run, their sessions in its
    records, not in the new process: a claim that comes before the node has listed them (here:
    before it reaches Redis at all, frozen) waits for the list, and the client resumes. It used
    to be served at once without a session, the record then thrown away."""
    (a,) = cluster(1)
    w = clients.wire(a.port, 5)
    assert w.connect("loyal", **persistent(5)).reason() == 0
    w.subscribe(1, ("news/#", sub_options(1)))
    w.disconnect()
    publisher = clients.paho(a.port, "pub")
    publisher.publish("news/1", "kept", 1)
    wait_for(lambda: cluster.redis.command("LLEN", f"sb:session-queue:{a.name}:loyal") == "1",
             what="the queue recorded")
    publisher.close()
    crash(a)
    cluster.redis.signal(signal.SIGSTOP)
    try:
        again = restart_broker(a, tmp_path, processes, wait=False)
        w = wait_for(lambda: listening(clients, again.port), what="the node listening")
        w.send(connect_packet("loyal", **persistent(5)))
        w.expect_silence(0.3)  # the CONNECT waits for the node's records while Redis is frozen
    finally:
        cluster.redis.signal(signal.SIGCONT)
    ack = w.expect(CONNACK)
    assert ack.reason() == 0 and ack.session_present
    assert receive(w, 1) == ["kept"]


def test_a_clean_start_after_a_crash_discards_the_record(cluster, clients):
    a, b = cluster(2)
    w = clients.wire(a.port, 5)
    assert w.connect("fresh", **persistent(5)).reason() == 0
    w.subscribe(1, ("x/#", sub_options(1)))
    clean_start_after_crash(cluster, clients, a, b, "fresh", w)
    assert not recorded(cluster, a, "fresh")
    assert b.metric(LOCAL_ROUTES) == 0


def test_a_clean_start_after_a_crash_publishes_the_will_of_the_session_it_ends(cluster,
                                                                               clients):
    a, b, watcher = watched_pair(cluster, clients)
    device = with_will(clients, a, "dev", delay_s=30)
    clean_start_after_crash(cluster, clients, a, b, "dev", device)
    # Long before its delay: the session the will waited in has ended (MQTT 5.0 §3.1.3.2.2).
    expect_will(watcher, "dev")
    assert b.metric(RESTORED) == 0  # from b's claim, not from an adoption


def test_a_claim_that_gives_up_on_a_slow_owner_leaves_the_will_to_it(cluster, clients):
    """The owner heard the claim but is frozen: after 2 s the claim takes the session from its
    record, without the will, which the owner publishes itself when it wakes and lets go (the
    record's went out as well: twice)."""
    a, b, watcher = watched_pair(cluster, clients, node_timeout_ms=10_000)
    with_will(clients, a, "dev", version=4)
    wait_for(lambda: recorded(cluster, a, "dev"), what="the session recorded")
    a.signal(signal.SIGSTOP)
    try:
        again = clients.wire(b.port, 4, timeout=10)
        ack = again.connect("dev", **persistent(4))  # after the claim's 2 s
        assert ack.reason() == 0 and ack.session_present
    finally:
        a.signal(signal.SIGCONT)
    expect_will(watcher, "dev")
    watcher.expect_silence(0.5)  # and only once


def test_a_node_taken_for_gone_exits_when_it_wakes(cluster, clients):
    """A node frozen past the node timeout is taken for gone: its sessions are adopted, its
    clients' wills published. When it wakes it must not serve on beside the adopter (two owners
    of one session, wills already out for clients it still serves): it exits, status 75, and its
    clients resume their sessions on the adopter."""
    a, b, watcher = watched_pair(cluster, clients)
    device = with_will(clients, a, "dev")
    device.subscribe(1, ("inbox/dev", sub_options(1)))
    wait_for(lambda: recorded(cluster, a, "dev"), what="the session recorded")
    a.signal(signal.SIGSTOP)
    try:
        expect_will(watcher, "dev")  # the node timeout (1 s) passed, b adopted the session
    finally:
        a.signal(signal.SIGCONT)
    assert a.proc.wait(timeout=5) == 75, a.log()
    assert "adopted its sessions" in a.log()
    device.expect_closed(timeout=5)
    back = resume(clients, b, "dev")
    clients.paho(b.port, "pub").publish("inbox/dev", "after", 1)
    assert receive(back, 1) == ["after"]
    watcher.expect_silence(0.5)  # the will went out once


def test_a_node_that_dies_again_soon_after_a_restart_is_adopted_again(cluster, clients, tmp_path,
                                                                     processes):
    """adopt:NODE names the run of the node adopted: a later run of it that dies within the
    key's life is adopted too (it used to wait for the key to expire, a minute, its clients'
    sessions and wills stuck in Redis)."""
    a, b, watcher = watched_pair(cluster, clients)
    with_will(clients, a, "dev-1")
    wait_for(lambda: recorded(cluster, a, "dev-1"), what="dev-1 recorded")
    crash(a)
    expect_will(watcher, "dev-1")
    again = restart_broker(a, tmp_path, processes)
    with_will(clients, again, "dev-2")
    wait_for(lambda: recorded(cluster, again, "dev-2"), what="dev-2 recorded")
    crash(again)
    expect_will(watcher, "dev-2")
    assert b.metric(RESTORED) == 2


def test_an_adoption_redis_failed_is_tried_again(cluster, clients):
    """The survivor that won a dead node's adoption could not list its sessions (here: an ACL
    forbids SMEMBERS for a while): it tries again, and the sessions, their wills with them, are
    adopted once Redis lets it. Before, they waited for their clients to come back, and the
    wills of those that never would were never published."""
    a, b, watcher = watched_pair(cluster, clients)
    with_will(clients, a, "dev")
    wait_for(lambda: recorded(cluster, a, "dev"), what="the session recorded")
    assert cluster.redis.command("ACL", "SETUSER", "default", "-smembers") == "OK"
    try:
        crash(a)
        wait_for(lambda: "smembers" in cluster.redis.command("ACL", "LOG"),
                 what="the listing refused")
    finally:
        assert cluster.redis.command("ACL", "SETUSER", "default", "+smembers") == "OK"
    expect_will(watcher, "dev")
    assert b.metric(RESTORED) == 1


def test_a_late_listing_of_a_restarted_nodes_records_leaves_this_runs_alone(cluster, clients,
                                                                          tmp_path, processes):
    """A restarted node whose listing of its last run's records fails (an ACL, here) serves its
    clients after the claims' 2 s, and they write records of this run. The listing, tried again
    once Redis allows it, must not take those: it used to, and published the will of a client
    still connected."""
    a, b, watcher = watched_pair(cluster, clients)
    crash(a)
    listing = ("SMEMBERS", f"sb:sessions:{a.name}")
    assert cluster.redis.command("ACL", "SETUSER", "default", "-smembers") == "OK"
    with redis_monitor(cluster.redis) as monitor:
        try:
            again = restart_broker(a, tmp_path, processes, wait=False)
            device = wait_for(lambda: listening(clients, again.port), what="the node listening")
            assert device.connect("dev", will={"topic": "status/dev", "payload": b"offline",
                                               "qos": 1}).reason() == 0  # after the claims' 2 s
            wait_for(lambda: recorded(cluster, again, "dev"), what="this run's record")
            refused = len(monitor.commands(*listing))
        finally:
            assert cluster.redis.command("ACL", "SETUSER", "default", "+smembers") == "OK"
        wait_for(lambda: len(monitor.commands(*listing)) > refused,
                 what="the listing tried again, and allowed")
    watcher.expect_silence(0.5)  # a will the listing set off would follow at once
    assert recorded(cluster, again, "dev")
    device.ping()


def owner_of(redis, client_id):
    """A function returning the node that owns `client_id`, over one connection to Redis kept
    open (redis-cli would take milliseconds per look)."""
    sock = socket.create_connection(("127.0.0.1", redis.port))
    key = f"sb:owner:{client_id}"
    request = f"*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n".encode()

    def get():
        sock.sendall(request)
        reply = b""
        # A bulk string: "$-1\r\n" for none, else "$LEN\r\nVALUE\r\n".
        while not (reply.startswith(b"$-1\r\n") or reply.count(b"\r\n") == 2):
            reply += sock.recv(4096)
        return None if reply.startswith(b"$-1") else reply.split(b"\r\n")[1].decode()
    return get


def test_a_claim_while_the_session_is_being_adopted_waits_for_it(cluster, clients):
    """A node adopting a dead node's session moves the client id first, then reads the record
    (large here: 10 MB queued). A claim from a third node in between asks the adopter for the
    session: it used to get "none" and start afresh, the adopted session orphaned."""
    a, b, c = cluster(3)
    go_offline(clients, a, "dev")
    publisher = clients.paho(a.port, "pub")
    for _ in range(500):
        publisher.publish("inbox/dev", b"x" * 20_000, 1)
    wait_for(lambda: cluster.redis.command("LLEN", f"sb:session-queue:{a.name}:dev") == "500",
             what="the queue recorded")
    publisher.close()
    owner = owner_of(cluster.redis, "dev")
    crash(a)
    survivors = {b.name: b, c.name: c}
    adopter = wait_for(lambda: survivors.get(owner()), timeout=5, interval=0,
                       what="a survivor adopting the session")
    claimer = c if adopter is b else b
    back = resume(clients, claimer, "dev")
    assert receive(back, 1) == ["x" * 20_000]


def test_an_adopted_session_still_expires(cluster, clients):
    a, b = cluster(2)
    w = clients.wire(a.port, 5)
    assert w.connect("brief", **persistent(5, expiry_s=2)).reason() == 0
    w.subscribe(1, ("brief/#", sub_options(1)))
    w.disconnect()
    wait_for(lambda: recorded(cluster, a, "brief"), what="the session recorded")
    crash(a)
    wait_for(lambda: b.metric(RESTORED) == 1, timeout=10, what="the session adopted")
    assert b.metric("sb_broker_sessions") == 1
    # Two seconds from its adoption, it ends there, record and all.
    b.wait_metric("sb_broker_sessions", 0, timeout=6)
    assert b.metric(LOCAL_ROUTES) == 0
    assert not recorded(cluster, b, "brief")
    assert cluster.redis.command("SCARD", f"sb:sessions:{b.name}") == "0"


def test_clients_of_a_killed_node_resume_their_sessions_through_the_proxy(cluster, start_proxy,
                                                                           clients, conns):
    a, b, c = cluster(3)
    proxy = start_proxy({"brokers": pool(a, b, c, strategy="least-connections",
                                         health=FAST_HEALTH)})
    subscribers = {}
    for i in range(6):
        w = conns.wire(proxy.port, 5)
        assert w.connect(f"durable-{i}", **persistent(5)).reason() == 0
        w.subscribe(1, (f"to/durable-{i}", sub_options(1)))
        subscribers[f"durable-{i}"] = w
    assert [n.metric("sb_broker_connections") for n in (a, b, c)] == [2, 2, 2]
    victims = [cid for cid in subscribers
               if cluster.redis.command("GET", f"sb:owner:{cid}") == c.name]
    assert len(victims) == 2
    for cid in victims:
        wait_for(lambda: recorded(cluster, c, cid), what=f"{cid} recorded")

    crash(c)
    proxy.wait_state(c.name, "down", pool_name="brokers")
    publisher = clients.paho(a.port, "pub")
    for cid in victims:
        subscribers[cid].close()
        # Through the proxy again, to a or b: the session is there, subscription included.
        w = conns.wire(proxy.port, 5, timeout=10)
        ack = w.connect(cid, **persistent(5))
        assert ack.reason() == 0 and ack.session_present, cid
        wait_for(lambda: routed_anywhere(a, 6), what="a routing to every subscriber")
        publisher.publish(f"to/{cid}", f"hello {cid}", 1)
        assert receive(w, 1) == [f"hello {cid}"]
    # The subscribers that were elsewhere never noticed.
    for cid, w in subscribers.items():
        if cid not in victims:
            publisher.publish(f"to/{cid}", "still here", 1)
            assert receive(w, 1) == ["still here"]
