"""The proxy in front of brokers that are not ours: mosquitto, checked with MQTT health checks
(CONNECT, CONNACK, DISCONNECT), with mosquitto_pub and mosquitto_sub as clients."""
import contextlib
import getpass
import re
import subprocess

from conftest import start_broker, wait_for  # noqa: F401
from mqtt_wire import PUBLISH, packet, props, string
from proxy_fixtures import (backend, conns, free_port, pool, start_mosquitto,  # noqa: F401
                            start_proxy)

MQTT_HEALTH = {"type": "mqtt", "interval_ms": 200, "fast_interval_ms": 200, "timeout_ms": 300,
               "rise": 2, "fall": 2}


def pub_sub_through(proxy, topic, payload, version="mqttv311"):
    """mosquitto_sub and mosquitto_pub, both through the proxy: the subscriber receives the
    publish. Publishing is repeated until it does, as the subscriber's SUBSCRIBE may still be on
    its way when the first publish arrives."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(proxy.port),
                            "-V", version, "-t", topic, "-C", "1", "-W", "5", "-i", "sub"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def delivered():
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(proxy.port),
                            "-V", version, "-t", topic, "-m", payload, "-i", "pub"],
                           check=True, timeout=5)
            try:
                return sub.wait(timeout=0.1) is not None
            except subprocess.TimeoutExpired:
                return False
        wait_for(delivered, timeout=5, what=f"{payload} through the proxy")
        out, err = sub.communicate(timeout=5)
        assert sub.returncode == 0, err
        assert out.strip() == payload
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def test_mosquitto_behind_the_proxy(start_mosquitto, start_proxy, tmp_path):
    m1 = start_mosquitto("m1")
    m2_port = free_port()
    # All clients come from 127.0.0.1: hashing the source address keeps publisher and subscriber
    # on the same broker (there is no cluster between two mosquittos).
    proxy = start_proxy({"p": pool(backend(m1.port, name="m1"), backend(m2_port, name="m2"),
                                   strategy="source-hash", hash_key="source-ip",
                                   health=MQTT_HEALTH)})
    # m2 is not running yet: the MQTT checks find it down, and up once it runs.
    proxy.wait_state("m2", "down", timeout=3)
    m2 = start_mosquitto("m2", port=m2_port)
    proxy.wait_state("m2", "up", timeout=3)
    wait_for(lambda: proxy.backend_metric("sb_proxy_backend_checks_total", "m1", "p") >= 3,
             what="checks of m1")
    assert proxy.backend_metric("sb_proxy_backend_checks_failed_total", "m1", "p") == 0
    assert proxy.state("m1") == "up"
    # Each backend's checks have a client id of their own, which names it.
    assert re.search(r" as sb-health-\S+-p-m1 ", m1.log()), m1.log()
    assert re.search(r" as sb-health-\S+-p-m2 ", m2.log()), m2.log()

    pub_sub_through(proxy, "through/proxy", "first")

    # Kill the broker the address hashes to; the checks mark it down, and the same clients
    # reach the other one.
    hashed = proxy.backends()
    victim = max(hashed, key=lambda n: hashed[n]["connections_total"])
    (m1 if victim == "m1" else m2).kill()
    proxy.wait_state(victim, "down", timeout=3)
    survivor = "m2" if victim == "m1" else "m1"
    assert proxy.state(survivor) == "up"
    before = proxy.backends()[survivor]["connections_total"]
    pub_sub_through(proxy, "after/kill", "second")
    assert proxy.backends()[survivor]["connections_total"] >= before + 2


def test_mqtt_checks_log_in_to_a_broker_that_refuses_anonymous_clients(start_mosquitto,
                                                                      start_proxy, tmp_path):
    """With a user name and password the checks' CONNECT is accepted; without, the broker is
    down and the log says why."""
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", passwords, "probe", "s3cret"], check=True)
    # Started as root, mosquitto would read the file as user mosquitto, outside the test's
    # directory: it keeps the user it was started as.
    m1 = start_mosquitto("m1", extra=f"user {getpass.getuser()}\nallow_anonymous false\n"
                                     f"password_file {passwords}\n")
    credentials = {"username": "probe", "password": "s3cret"}
    proxy = start_proxy({"anonymous": pool(backend(m1.port, name="m1"), health=MQTT_HEALTH),
                         "known": pool(backend(m1.port, name="m1"),
                                       health={**MQTT_HEALTH, **credentials})})
    proxy.wait_state("m1", "down", timeout=3, pool_name="anonymous")
    assert "backend m1 down (not available): CONNACK refused: not_authorized" in proxy.log()
    wait_for(lambda: proxy.backend_metric("sb_proxy_backend_checks_total", "m1", "known") >= 3,
             what="checks with credentials")
    assert proxy.backend_metric("sb_proxy_backend_checks_failed_total", "m1", "known") == 0
    assert proxy.state("m1", pool_name="known") == "up"
    assert "s3cret" not in proxy.log()


def test_mqtt_3_1_clients_reach_mosquitto_and_our_broker(start_mosquitto, start_broker,
                                                         start_proxy):
    # 3.1 ("MQIsdp", level 3) is read like 3.1.1 and passed on; each broker decides. Both serve
    # it, as mosquitto and EMQX do.
    m1 = start_mosquitto("m1")
    b1 = start_broker(name="b1")
    for name, port in (("m1", m1.port), ("b1", b1.port)):
        proxy = start_proxy({"p": pool(backend(port, name=name))}, name=f"proxy-{name}")
        pub_sub_through(proxy, "old/clients", f"3.1 via {name}", version="mqttv31")
        assert proxy.rejected("malformed_first_packet") == 0


def test_mosquittos_last_words_reach_a_client_still_sending(start_mosquitto, start_proxy, conns):
    # mosquitto refuses a PUBLISH over its max_packet_size while the client is still sending it,
    # and closes with the rest unread: a reset, not a FIN. The proxy takes that as the end of the
    # session, as it takes a FIN: the client gets what mosquitto sent before, then a clean end of
    # stream. Before, the reset closed the client's side at once, with a reset of its own.
    m1 = start_mosquitto("m1", extra="max_packet_size 1024\n")
    proxy = start_proxy({"p": pool(backend(m1.port, name="m1", check=None))})
    c = conns.wire(proxy.port)
    assert c.connect("too-big").reason() == 0
    with contextlib.suppress(OSError):  # the proxy may stop reading once mosquitto has gone
        c.sock.sendall(packet(PUBLISH, 0, string("big/t") + props() + bytes(2_000_000)))
    answer = b""
    while chunk := c.sock.recv(65536):  # a reset raises
        answer += chunk
    assert answer == b"" or answer[0] == 0xE0, answer  # nothing, or a DISCONNECT
