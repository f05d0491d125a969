"""Fixtures for the proxy's integration tests: a `switchboard` process built from pools and
listeners given as Python data, the clients that go through it, and a plain TCP echo server to put
behind a tcp listener.

    def test_x(brokers, start_proxy, conns):
        b1, b2 = brokers(2)                       # node names b1, b2
        proxy = start_proxy({"brokers": pool(b1, b2, strategy="least-connections")})
        c = conns.wire(proxy.port)
        assert c.connect("c1").reason() == 0
        assert proxy.active() == {"b1": 1, "b2": 0}

Which broker a client landed on is read, never guessed: from the proxy's /api/pools ("active" per
backend; Proxy.landing) or from each broker's sb_broker_connections.

The test modules import the fixtures they use from here (conftest.py belongs to the broker tests).
"""
import asyncio
import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as paho
import pytest

import conftest
from conftest import BIN, Broker, Process, fetch_metrics, free_port, http_get, sample, wait_for
from mqtt_wire import WireClient


# ---- The PROXY protocol v2 (haproxy.org/download/2.6/doc/proxy-protocol.txt, section 2.2) ------

PROXY_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(source=None, destination=None):
    """A PROXY v2 header for TCP over IPv4 from `source` to `destination`, (host, port) pairs; a
    LOCAL one (no addresses: the sender's own connection) without them."""
    if source is None:
        return PROXY_SIGNATURE + b"\x20\x00\x00\x00"
    addresses = (socket.inet_aton(source[0]) + socket.inet_aton(destination[0])
                 + struct.pack("!HH", source[1], destination[1]))
    return PROXY_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(addresses)) + addresses


# ---- Configuration -------------------------------------------------------------------------------

def backend(broker_or_port, name=None, weight=1, check="admin"):
    """A backend entry for a pool. `broker_or_port`: a Broker (checks go to its admin port when
    `check` is "admin", the health type then being "http"), or a bare port (checks go to it)."""
    if isinstance(broker_or_port, int):
        assert name, "a backend given by port needs a name"
        return {"name": name, "address": f"127.0.0.1:{broker_or_port}", "weight": weight}
    b = {"name": name or getattr(broker_or_port, "name", None),
         "address": f"127.0.0.1:{broker_or_port.port}", "weight": weight}
    if check == "admin":
        b["check_address"] = f"127.0.0.1:{broker_or_port.admin_port}"
    return b


def pool(*backends, health=None, passive=None, **settings):
    """A pool: its settings (strategy=..., sticky=..., ...), its backends (Broker objects or dicts
    from backend()), and optionally its [health] and [passive] tables."""
    p = dict(settings)
    p["backends"] = [b if isinstance(b, dict) else backend(b) for b in backends]
    if health is not None:
        p["health"] = health
    if passive is not None:
        p["passive"] = passive
    return p


# Short health-check settings for tests: a verdict within a few hundred milliseconds. With
# interval = fast_interval, detection of a dead backend takes at most
#   interval x (1 + jitter) + fall x timeout + (fall - 1) x fast_interval x (1 + jitter)
# and of a refused one (a killed process) less, as its checks fail at once.
FAST_HEALTH = {"type": "http", "interval_ms": 200, "fast_interval_ms": 200, "timeout_ms": 150,
               "rise": 2, "fall": 2, "jitter_percent": 10}


def detection_ms(health):
    """The configured detection time of a health table: fall x fast_interval + timeout."""
    return health["fall"] * health["fast_interval_ms"] + health["timeout_ms"]


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string is a JSON string for what tests use


def _toml_table(header, values, array=False):
    lines = [f"[[{header}]]" if array else f"[{header}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def render_config(pools, listeners, admin_port, threads, log_level, instance="proxy-test",
                  redis=None, settings=None):
    """The TOML text of a proxy configuration; `redis`: the [redis] table, if any; `settings`:
    more keys of [proxy]."""
    out = [_toml_table("proxy", {"instance": instance, "admin": f"127.0.0.1:{admin_port}",
                                 "threads": threads, "log_level": log_level,
                                 **(settings or {})})]
    if redis:
        out.append(_toml_table("redis", redis))
    for listener in listeners:
        out.append(_toml_table("listener", listener, array=True))
    for name, p in pools.items():
        settings = {k: v for k, v in p.items() if k not in ("backends", "health", "passive")}
        out.append(_toml_table(f"pool.{name}", settings))
        for b in p["backends"]:
            out.append(_toml_table(f"pool.{name}.backend", b, array=True))
        if "health" in p:
            out.append(_toml_table(f"pool.{name}.health", p["health"]))
        if "passive" in p:
            out.append(_toml_table(f"pool.{name}.passive", p["passive"]))
    return "\n".join(out)


# ---- The proxy process ---------------------------------------------------------------------------

class Proxy(Process):
    """`switchboard` on free loopback ports with the configuration built from `pools` and
    `listeners` (default: one mqtt listener called "mqtt" in front of the first pool).

    .port is the first listener's port, .ports every listener's by name; .admin_port the admin API.
    """

    def __init__(self, tmp_path, pools, listeners=None, name="proxy", threads=2,
                 log_level="info", redis=None, ports=None, env=None, settings=None, instance=None):
        self.name = name
        self.redis = redis
        self.settings = settings
        self.instance = instance or name
        self.tmp_path = tmp_path
        self.admin_port = free_port()
        self.threads = threads
        self.log_level = log_level
        self.ports = dict(ports or {})
        self.config_path = tmp_path / f"{name}.toml"
        self.write_config(pools, listeners)
        super().__init__([BIN / "switchboard", "--config", self.config_path],
                         tmp_path / f"{name}.log", env)
        wait_for(lambda: self.healthy() or not self.alive(), timeout=10, what=f"{name} healthz")
        assert self.alive(), f"{name} exited at start:\n{self.log()}"

    def write_config(self, pools, listeners=None):
        """Writes the configuration file; listeners keep their port across calls by name."""
        if listeners is None:
            listeners = [{"name": "mqtt", "protocol": "mqtt", "pool": next(iter(pools))}]
        rendered = []
        for listener in listeners:
            listener = dict(listener)
            if "bind" not in listener:
                port = self.ports.get(listener["name"]) or free_port()
                listener["bind"] = f"127.0.0.1:{port}"
            self.ports[listener["name"]] = int(listener["bind"].rsplit(":", 1)[1])
            rendered.append(listener)
        self.pools_config = pools
        self.listeners_config = rendered
        self.config_path.write_text(render_config(pools, rendered, self.admin_port, self.threads,
                                                  self.log_level, self.instance, self.redis,
                                                  self.settings))

    @property
    def port(self):
        return self.ports[self.listeners_config[0]["name"]]

    def url(self, path):
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def healthy(self):
        return http_get(self.url("/healthz"))[0] == 200

    # -- Admin API

    def pools(self):
        """GET /api/pools as parsed JSON."""
        status, body = http_get(self.url("/api/pools"))
        assert status == 200, body
        return json.loads(body)

    def backends(self, pool_name=None):
        """{backend name: its /api/pools object} of one pool (default: the only or first one)."""
        pools = self.pools()["pools"]
        p = pools[0] if pool_name is None else next(p for p in pools if p["name"] == pool_name)
        return {b["name"]: b for b in p["backends"]}

    def active(self, pool_name=None):
        """{backend name: this proxy's open connections to it}."""
        return {n: b["active"] for n, b in self.backends(pool_name).items()}

    def state(self, backend_name, pool_name=None):
        return self.backends(pool_name)[backend_name]["state"]

    def wait_state(self, backend_name, state, timeout=5.0, pool_name=None):
        wait_for(lambda: self.state(backend_name, pool_name) == state, timeout=timeout,
                 what=f"{backend_name} {state} (is {self.state(backend_name, pool_name)})")

    def post(self, path, body=b"", headers=None, answer_headers=None):
        """POST to the admin API; returns (status, parsed JSON or text). `answer_headers`, a dict,
        receives the response's headers."""
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url(path), data=data, method="POST",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                status, text, got = r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            status, text, got = e.code, e.read().decode(), e.headers
        if answer_headers is not None:
            answer_headers.update(got.items())
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def metrics(self):
        return fetch_metrics(self.url("/metrics"))

    def metric(self, key, absent=None):
        return sample(self.metrics(), key, absent)

    def backend_metric(self, family, backend_name, pool_name):
        return self.metric(f'{family}{{pool="{pool_name}",backend="{backend_name}"}}')

    def rejected(self, reason, listener="mqtt"):
        return self.metric(
            f'sb_proxy_listener_rejected_total{{listener="{listener}",reason="{reason}"}}')

    # -- Which backend a connection reached

    def landing(self, connect, pool_name=None, timeout=5.0):
        """Runs `connect()` (which must open exactly one connection through the proxy and leave it
        open) and returns (its result, the name of the backend whose active count went up)."""
        before = self.active(pool_name)
        result = connect()
        total = sum(before.values()) + 1
        after = wait_for(lambda: (lambda a: a if sum(a.values()) == total else None)(
            self.active(pool_name)), timeout=timeout, what="the new connection in /api/pools")
        grown = [n for n in after if after[n] > before.get(n, 0)]
        assert len(grown) == 1, (before, after)
        return result, grown[0]

    # -- Reloads

    def _log_count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def reload(self, pools=None, listeners=None, text=None, expect_ok=True, timeout=5.0):
        """Writes a new configuration (from pools/listeners, or raw `text`), sends SIGHUP and waits
        until the proxy has logged that it applied it (every I/O thread has it) or refused it;
        asserts which of the two."""
        ok_before = self._log_count(r"\] reloaded ")
        refused_before = self._log_count(r"reload refused")
        if text is not None:
            self.config_path.write_text(text)
        else:
            self.write_config(pools if pools is not None else self.pools_config,
                              listeners if listeners is not None else self.listeners_config)
        self.signal(signal.SIGHUP)
        wait_for(lambda: self._log_count(r"\] reloaded ") > ok_before
                 or self._log_count(r"reload refused") > refused_before,
                 timeout=timeout, what="the reload to be applied or refused")
        applied = self._log_count(r"\] reloaded ") > ok_before
        assert applied == expect_ok, f"reload {'refused' if not applied else 'applied'}:\n" + \
            self.log()[-2000:]


@pytest.fixture
def start_proxy(tmp_path, processes):
    """start_proxy(pools, listeners=None, name="proxy", threads=2) -> a running Proxy. It stops
    before the brokers of the test, so that they never wait for the proxy's connections."""
    def start(pools, listeners=None, **kwargs):
        p = Proxy(tmp_path, pools, listeners, **kwargs)
        processes.insert(0, p)
        return p
    return start


def restart_broker(old, tmp_path, processes, wait=True):
    """Starts a broker again on the ports and arguments of `old` (stopped or killed); with `wait`,
    returns once it is healthy."""
    b = Broker.__new__(Broker)
    b.port, b.admin_port, b.config_path = old.port, old.admin_port, old.config_path
    b.name = old.name
    n = sum(1 for p in tmp_path.glob(f"{old.name}*.log"))
    Process.__init__(b, old.args, tmp_path / f"{old.name}.{n}.log")
    processes.append(b)
    if wait:
        wait_for(lambda: b.healthy() or not b.alive(), timeout=10, what=f"{old.name} back up")
        assert b.alive(), b.log()
    return b


@pytest.fixture
def brokers(start_broker):
    """brokers(n) -> [b1, ..., bn], each with .name set to its node name."""

    def start(n, prefix="b"):
        out = []
        for i in range(1, n + 1):
            b = start_broker(name=f"{prefix}{i}")
            b.name = f"{prefix}{i}"
            out.append(b)
        return out
    return start


# ---- Redis ---------------------------------------------------------------------------------------

class RedisServer(Process):
    """redis-server on a free loopback port, without persistence; stop() and start() again keep
    the port, as an outage and a return do."""

    def __init__(self, tmp_path, port=None):
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.starts = 0
        self._launch()

    def _launch(self):
        self.starts += 1
        super().__init__(["redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], self.tmp_path / f"redis.{self.starts}.log")
        wait_for(self._listening, timeout=10, what="redis-server")

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def start(self):
        self._launch()

    def command(self, *args, password=None):
        auth = ["-a", password, "--no-auth-warning"] if password else []
        out = subprocess.run(["redis-cli", "-p", str(self.port), *auth, *map(str, args)],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip()


@pytest.fixture
def redis_server(tmp_path, processes):
    r = RedisServer(tmp_path)
    processes.append(r)
    return r


# ---- Clients -------------------------------------------------------------------------------------

class SourceWireClient(WireClient):
    """A WireClient whose connection leaves from `source_ip` (any 127.x.y.z on Linux loopback)."""

    def __init__(self, port, source_ip, version=5, timeout=5.0):
        self.version = version
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source_ip, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""


class ReconnectingClient:
    """A paho-mqtt client that reconnects by itself (after 50 ms, then up to 200 ms), subscribes to
    its own topic on every connection and can prove a round trip: publish to itself, receive."""

    def __init__(self, port, client_id, version=paho.MQTTv311):
        self.client_id = client_id
        self.topic = f"own/{client_id}"
        self.lock = threading.Lock()
        self.connections = 0        # CONNACKs accepted so far
        self.subscribed = 0         # the connection number whose SUBACK arrived
        self.received = []
        self.connected = False
        self._sent = set()         # (token, connection number) published
        self._pending = None       # (SUBSCRIBE packet id, connection number)
        self.client = paho.Client(client_id=client_id, protocol=version, clean_session=True)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self.subscribed == 1, what=f"{client_id} connected and subscribed")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc != 0:
            return
        with self.lock:
            self.connections += 1
            self.connected = True
            number = self.connections
        _, mid = client.subscribe(self.topic, 0)
        self._pending = (mid, number)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        pending = self._pending
        if pending and pending[0] == mid:
            self.subscribed = pending[1]

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.connected = False

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.received.append(message.payload.decode())

    def round_trip(self, token):
        """Publishes `token` to its own topic once it is subscribed on its current connection
        (again on each new connection: one sent on a dying connection is lost); True once `token`
        came back. For polling with wait_for."""
        with self.lock:
            if token in self.received:
                return True
            number = self.connections
            ready = self.connected and self.subscribed == number
        if ready and (token, number) not in self._sent:
            self._sent.add((token, number))
            self.client.publish(self.topic, token, 0)
        return False

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Conns(conftest.Clients):
    """Clients and sockets opened by a test, closed at its end (before the processes stop)."""

    def wire(self, port, version=5, timeout=5.0, source_ip=None):
        if source_ip:
            return self.track(SourceWireClient(port, source_ip, version, timeout))
        return super().wire(port, version, timeout)

    def socket(self, port, timeout=5.0):
        return self.track(socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def reconnecting(self, port, client_id):
        return self.track(ReconnectingClient(port, client_id))


@pytest.fixture
def conns(processes):
    """conns.wire(port, version, source_ip=None), conns.socket(port), conns.reconnecting(port, id);
    all closed before the test's processes stop (this fixture depends on theirs)."""
    c = Conns()
    yield c
    c.close_all()


def is_open(wire):
    """True when a WireClient's connection still carries MQTT: a PINGREQ gets its PINGRESP."""
    try:
        wire.ping()
        return True
    except (AssertionError, OSError):
        return False


def is_closed(sock_or_wire, timeout=0.05):
    """True when the peer has closed (EOF or reset) and nothing else is pending; reads and drops
    whatever else arrives."""
    s = getattr(sock_or_wire, "sock", sock_or_wire)
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (socket.timeout, BlockingIOError):
        return False
    except OSError:
        return True


def tcp_sockets():
    """(local port, remote port, state, held) of every IPv4 TCP socket on this machine, from
    /proc/net/tcp; the state is the kernel's code ("01" established, "02" SYN sent, "0A"
    listening), held whether a process still has it open (a closed one lingering in the kernel,
    in TIME_WAIT say, has no inode)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return [(int(r[1].split(":")[1], 16), int(r[2].split(":")[1], 16), r[3], r[9] != "0")
            for r in rows]


@pytest.fixture
def hung_port():
    """The port of a listener whose accept queue is full: it drops new SYNs, so connecting to it
    hangs until the connecting side gives up."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):  # a backlog of 0 still takes one or two: fill whatever it takes
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(full.getsockname())
        fillers.append(f)
    yield full.getsockname()[1]
    for f in fillers:
        f.close()
    full.close()


@pytest.fixture
def silent_port():
    """The port of a listener that never accepts: the kernel completes the handshakes (up to its
    backlog) and takes what clients send, and nothing ever answers, as with a hung broker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def dropping_port():
    """The port of a listener that accepts every connection, reads what the client sends first
    and resets it without a byte in answer: a service that is up as far as TCP goes, but refuses
    every client (a wrong service on the port, a broker that expects a PROXY header)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(5)


# ---- A plain TCP service -------------------------------------------------------------------------

class EchoServer:
    """An asyncio TCP echo server on its own thread. Each connection's bytes are echoed as they
    come; on the client's end of stream it sends b"<eof>" and then closes, so that a client that
    half-closed can tell it still receives (with `eof_reply`=b"" it closes without a word).
    `received[i]` holds every byte connection i sent."""

    def __init__(self, eof_reply=b"<eof>"):
        self.eof_reply = eof_reply
        self.port = free_port()
        self.received = []
        self.closed = []   # per connection: True once the server saw it end
        self._tasks = set()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(5), "echo server did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer):
        self._tasks.add(asyncio.current_task())
        index = len(self.received)
        self.received.append(b"")
        self.closed.append(False)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if self.eof_reply:
                        writer.write(self.eof_reply)
                        await writer.drain()
                    break
                self.received[index] += data
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.closed[index] = True
            writer.close()

    def stop(self):
        async def close():
            self.server.close()
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def echo_server():
    s = EchoServer()
    yield s
    s.stop()


@pytest.fixture
def silent_server():
    """An EchoServer that answers a client's end of stream by closing, without a word."""
    s = EchoServer(eof_reply=b"")
    yield s
    s.stop()


def recv_until(sock, expected_len, timeout=3.0):
    """Reads until `expected_len` bytes or EOF; returns what arrived."""
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < expected_len:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


# ---- mosquitto -----------------------------------------------------------------------------------

class Mosquitto(Process):
    """mosquitto on a free loopback port, anonymous clients allowed."""

    def __init__(self, tmp_path, name, port=None, extra=""):
        self.name = name
        self.port = port or free_port()
        conf = tmp_path / f"{name}.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nlog_dest stderr\n" + extra)  # unbuffered
        super().__init__(["mosquitto", "-c", conf], tmp_path / f"{name}.log")
        wait_for(lambda: self._listening() or not self.alive(), timeout=10,
                 what=f"{name} listening")
        assert self.alive(), self.log()

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False


@pytest.fixture
def start_mosquitto(tmp_path, processes):
    """start_mosquitto(name, port=None, extra="") -> a running Mosquitto (`extra`: more lines of
    its configuration), stopped after the test."""
    def start(name, port=None, extra=""):
        m = Mosquitto(tmp_path, name, port, extra)
        processes.append(m)
        return m
    return start
