"""Fixtures that start the real binaries on free loopback ports and stop them afterwards, and the
clients that talk to them.

Every wait is on a condition with a deadline (wait_for), never a bare sleep. A process that exits
unexpectedly, or any test that fails, gets the process's log printed with the failure.

Clients made through the `clients` fixture (WireClient, PahoClient) are closed before the brokers
stop, so a broker's graceful shutdown never waits for a test's forgotten socket.

Environment: SB_BIN, the directory of the binaries (default build/bin; point it at a copy to test
a build that others' rebuilds cannot replace mid-run); SB_THREADS, the brokers' I/O threads
(default 2, so that routing crosses threads; 1 and 4 are worth a run too).
"""
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as paho
import pytest

from mqtt_wire import MESSAGE_EXPIRY_INTERVAL, PUBACK, WireClient, p_u32, props

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SB_BIN", ROOT / "build" / "bin"))


# Parametrizes a test over both protocol versions by their CONNECT level.
both_versions = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()


def free_port():
    """A free loopback port below the kernel's ephemeral range, never handed out twice in a run.
    A port the kernel picks (bind to port 0) is in that range, where the kernel may give it to one
    of the hundreds of client connections of these tests before the process that is to listen on
    it binds it ("Address already in use"). The kernel never picks a connection's local port below
    the range."""
    low = min(10000, _EPHEMERAL_LOW // 2)  # a kernel whose range starts low leaves fewer
    for _ in range(1000):
        port = random.randint(low, _EPHEMERAL_LOW - 1)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise AssertionError(f"no free port in {low}..{_EPHEMERAL_LOW - 1}")


def wait_for(condition, timeout=5.0, interval=0.01, what="condition"):
    """Polls `condition` until it returns a truthy value, which is returned; fails at the
    deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url, timeout=2.0):
    """Returns (status, body) of a GET, or (None, error text) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


class Samples(dict):
    """The samples of a /metrics page, {'name{labels}': value}, and `families`: the names of its
    metric families (those of its TYPE lines), samples or not."""
    families = frozenset()


def fetch_metrics(url):
    """The samples of a Prometheus /metrics page as a Samples."""
    status, body = http_get(url)
    assert status == 200, body
    samples = Samples()
    families = set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split(" ")[2])
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    samples.families = frozenset(families)
    return samples


def sample(samples, key, absent=None):
    """One sample of a /metrics page: an error when the page has none of that name, so that a
    test's "is 0" cannot pass on a metric that was renamed or never existed. `absent`: the value
    of a sample that a family which leaves out zeros (by reason code, say) does not list; the
    family must exist."""
    if key in samples:
        return samples[key]
    family = key.split("{", 1)[0]
    if absent is not None and family in samples.families:
        return absent
    near = sorted(k for k in samples if k.startswith(family))
    raise AssertionError(f"no sample {key} in /metrics; of that family: {near or 'none'}")


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ")
LIBFAKETIME = pathlib.Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def clock_off_by(seconds):
    """The environment of a process whose wall clock is `seconds` off (libfaketime, from Debian's
    faketime); its monotonic clock, which timers use, stays true. Checked on `date`, since a
    preload that fails to load only warns."""
    env = {**os.environ, "FAKETIME": f"{seconds:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "LD_PRELOAD": str(LIBFAKETIME)}
    assert LIBFAKETIME.exists(), f"{LIBFAKETIME} missing: scripts/install-deps installs faketime"
    off = int(subprocess.check_output(["date", "+%s"], env=env)) - time.time()
    assert abs(off - seconds) < 5, f"libfaketime moved the clock by {off:.0f} s, not {seconds}"
    return env


TEST_RESOLVER = BIN.parent / "tests" / "libtest_resolver.so"


def resolver_env(**settings):
    """The environment of a process whose system resolver the test controls
    (tests/integration/test_resolver.cc): `settings` are its TEST_RESOLVER_* variables."""
    assert TEST_RESOLVER.exists(), f"{TEST_RESOLVER} missing: scripts/build builds it"
    return {**os.environ, "LD_PRELOAD": str(TEST_RESOLVER),
            **{f"TEST_RESOLVER_{k.upper()}": str(v) for k, v in settings.items()}}


def slow_resolver(ms, mark=None):
    """The environment of a process whose system resolver takes `ms` for any host name ending in
    ".slow.test", which it resolves to 127.0.0.1; with `mark`, a path, such a lookup first writes
    the process id there."""
    return resolver_env(slow_ms=ms, **({"mark": mark} if mark is not None else {}))


def mapped_resolver(path, log=None):
    """The environment of a process whose system resolver resolves any host name ending in
    ".map.test" to the addresses in the file `path` at the time of the lookup, one per line; with
    `log`, a path, each such lookup appends a line there."""
    return resolver_env(map=path, **({"log": log} if log is not None else {}))


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args, log_path, env=None):
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)

    def log(self):
        if not self._log.closed:
            self._log.flush()
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()


class Broker(Process):
    """switchboard-broker on free ports, started with a TOML config built from `config`."""

    def __init__(self, tmp_path, config="", name="broker", extra_args=(),
                 threads=int(os.environ.get("SB_THREADS", 2)), env=None):
        self.threads = threads
        self.port = free_port()
        self.admin_port = free_port()
        self.config_path = tmp_path / f"{name}.toml"
        self.config_path.write_text(config)
        args = [BIN / "switchboard-broker", "--config", self.config_path,
                "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
                "--node", name, "--threads", str(threads), *extra_args]
        super().__init__(args, tmp_path / f"{name}.log", env)
        wait_for(lambda: self.healthy() or not self.alive(), timeout=10, what=f"{name} healthz")
        assert self.alive(), f"{name} exited at start:\n{self.log()}"

    def healthy(self):
        return http_get(f"http://127.0.0.1:{self.admin_port}/healthz")[0] == 200

    def metrics(self):
        return fetch_metrics(f"http://127.0.0.1:{self.admin_port}/metrics")

    def metric(self, key, absent=None):
        return sample(self.metrics(), key, absent)

    def wait_metric(self, key, value, timeout=5.0):
        """Waits until the metric `key` equals `value`."""
        wait_for(lambda: self.metric(key) == value, timeout=timeout,
                 what=f"{key} == {value} (is {self.metric(key)})")

    def wait_connections(self, n, timeout=5.0):
        """Waits until exactly `n` MQTT connections are attached: after a client's DISCONNECT or
        close, this is when the broker has processed it."""
        self.wait_metric("sb_broker_connections", n, timeout)


@pytest.fixture
def processes(request):
    """Collects started processes; stops them at the end and prints their logs if the test
    failed. A sanitizer's report in any of their logs (a build with SWITCHBOARD_SANITIZE, see
    scripts/test) fails the test."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    reported = []
    for p in started:
        p.stop()
        log = p.log()
        if failed:
            print(f"\n----- log of {' '.join(p.args[:1])} ({p.log_path}) -----\n{log[-6000:]}")
        if any(r in log for r in SANITIZER_REPORTS):
            reported.append(str(p.log_path))
    if reported:
        pytest.fail(f"sanitizer reports in {', '.join(reported)}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def start_broker(tmp_path, processes):
    """start_broker(config="", name="broker", ...) -> a running Broker, stopped after the test."""
    def start(config="", name="broker", **kwargs):
        b = Broker(tmp_path, config, name, **kwargs)
        processes.append(b)
        return b
    return start


@pytest.fixture
def broker(start_broker):
    return start_broker()


# ---- Clients -------------------------------------------------------------------------------------

class PahoClient:
    """A paho-mqtt client (3.1.1 or 5.0) on its own network thread that records what it receives.

    The constructor connects and waits for the CONNACK; `connack` is (flags, reason code,
    properties) with the reason code an int and properties None in 3.1.1. It never reconnects by
    itself."""

    def __init__(self, port, client_id="", version=5, clean_start=True, keepalive=60,
                 properties=None, will=None):
        self.version = version
        self.protocol = paho.MQTTv5 if version == 5 else paho.MQTTv311
        kwargs = {} if version == 5 else {"clean_session": clean_start}
        self.client = paho.Client(client_id=client_id, protocol=self.protocol,
                                  reconnect_on_failure=False, **kwargs)
        self.lock = threading.Lock()
        self.messages = []     # paho MQTTMessage, in arrival order
        self.subacks = {}      # mid -> list of reason codes (ints)
        self.unsubacks = {}    # mid -> list of reason codes (ints; empty in 3.1.1)
        self.disconnects = []  # reason codes (ints) of the connection's end
        self.connack = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_disconnect = self._on_disconnect
        if will:
            self.client.will_set(**will)
        if version == 5:
            self.client.connect("127.0.0.1", port, keepalive, clean_start=clean_start,
                                properties=properties)
        else:
            self.client.connect("127.0.0.1", port, keepalive)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None or self.disconnects, what="CONNACK")
        assert self.connack is not None, f"no CONNACK, disconnected with {self.disconnects}"

    @staticmethod
    def _code(rc):
        return rc.value if hasattr(rc, "value") else int(rc)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (flags, self._code(rc), properties)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.subacks[mid] = [self._code(g) for g in granted]

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasons=None):
        if reasons is None:
            codes = []
        elif isinstance(reasons, list):
            codes = [self._code(r) for r in reasons]
        else:
            codes = [self._code(reasons)]
        self.unsubacks[mid] = codes

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnects.append(self._code(rc))

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """Subscribes and waits for the SUBACK; returns its reason codes."""
        if options is not None:
            rc, mid = self.client.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.client.subscribe(topic, qos, properties=properties)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        return wait_for(lambda: self.subacks.get(mid), what=f"SUBACK for {topic}")

    def unsubscribe(self, topic, properties=None):
        """Unsubscribes and waits for the UNSUBACK; returns its reason codes (5.0)."""
        rc, mid = self.client.unsubscribe(topic, properties=properties)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        wait_for(lambda: mid in self.unsubacks, what=f"UNSUBACK for {topic}")
        return self.unsubacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        """Publishes and waits until the flow of its QoS is complete."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def wait_messages(self, count, timeout=5.0):
        """Waits until at least `count` messages arrived; returns a copy of all of them."""
        wait_for(lambda: len(self.messages) >= count, timeout=timeout,
                 what=f"{count} messages (have {len(self.messages)})")
        with self.lock:
            return list(self.messages)

    def disconnect(self, properties=None):
        """A normal DISCONNECT, waiting for the network thread to finish."""
        if self.version == 5:
            self.client.disconnect(properties=properties)
        else:
            self.client.disconnect()
        self.client.loop_stop()

    def close(self):
        """Ends the client: a DISCONNECT if it is still connected, then the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


class Clients:
    """Makes clients and closes those still open at the end of the test."""

    def __init__(self):
        self.open = []

    def track(self, c):
        self.open.append(c)
        return c

    def wire(self, port, version=5, timeout=5.0):
        return self.track(WireClient(port, version=version, timeout=timeout))

    def paho(self, port, client_id="", version=5, **kwargs):
        return self.track(PahoClient(port, client_id, version, **kwargs))

    def close_all(self):
        for c in reversed(self.open):
            try:
                c.close()
            except OSError:
                pass
        self.open.clear()


@pytest.fixture
def clients(processes):
    """clients.wire(port, version) -> WireClient, clients.paho(port, id, version, ...) ->
    PahoClient; closed before the brokers of the test stop (this fixture depends on theirs)."""
    c = Clients()
    yield c
    c.close_all()


def mosquitto_sub(port, topic, version, qos, count, timeout=5, extra=()):
    """Starts mosquitto_sub for `count` messages, printing "topic payload" lines (-v)."""
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-V", version,
         "-q", str(qos), "-C", str(count), "-W", str(timeout), "-v", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mosquitto_pub(port, topic, message, version, qos, extra=()):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                    "-m", message, "-V", version, "-q", str(qos), *extra],
                   check=True, timeout=5)


def run_bench(tmp_path, port, *args, expect_status=0, timeout=60):
    """Runs switchboard-bench against 127.0.0.1:`port`; returns (its JSON result, the process)."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [BIN / "switchboard-bench", *args, "--target", f"127.0.0.1:{port}", "--json", out, "-q"],
        capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect_status, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc


def assert_serves(broker, version=5):
    """The broker is alive and a fresh client can still subscribe, publish and receive."""
    assert broker.alive(), f"broker died:\n{broker.log()[-3000:]}"
    c = WireClient(broker.port, version=version)
    try:
        assert c.connect("health-check").reason() == 0
        assert c.subscribe(1, ("health/check", 1)).suback_codes() == [1]
        c.publish("health/check", b"still here", qos=1, packet_id=2)
        got = []
        while len(got) < 2:  # the PUBACK and our own message, in either order
            got.append(c.recv())
        assert sorted(p.type for p in got) == [3, 4], got
        c.disconnect()
    finally:
        c.close()


def publish_expiring_retained(clients, port, prefix):
    """Retained through `port`: PREFIX/short for 1 s, PREFIX/long for 60 s."""
    pub = clients.wire(port)
    pub.connect(f"{prefix}-pub")
    for packet_id, (topic, interval) in enumerate([("short", 1), ("long", 60)], 1):
        pub.publish(f"{prefix}/{topic}", b"x", qos=1, packet_id=packet_id, retain=True,
                    properties=props(p_u32(MESSAGE_EXPIRY_INTERVAL, interval)))
        pub.expect(PUBACK)
    pub.close()


def expect_only_the_lasting_retained(clients, port, prefix):
    """Once PREFIX/short has expired: a new subscriber to PREFIX/# through `port` gets
    PREFIX/long, with what is left of its 60 s, and not PREFIX/short."""
    s = clients.wire(port)
    s.connect(f"{prefix}-late")
    s.subscribe(1, (f"{prefix}/#", 1))
    m = s.expect_message()
    assert (m.topic, m.retain) == (f"{prefix}/long", True)
    assert 1 <= m.props[MESSAGE_EXPIRY_INTERVAL] <= 59
    s.ack(PUBACK, m.packet_id)
    s.expect_silence(0.2)  # not the expired one
