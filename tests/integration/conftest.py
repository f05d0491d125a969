"""Fixtures that start the real binaries on free loopback ports and stop them afterwards.

Every wait is on a condition with a deadline (wait_for), never a bare sleep. A process that exits
unexpectedly, or any test that fails, gets the process's log printed with the failure.
"""
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SB_BIN", ROOT / "build" / "bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=5.0, interval=0.01, what="condition"):
    """Polls `condition` until it returns a truthy value, which is returned; fails at the deadline."""
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


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args, log_path):
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
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

    def __init__(self, tmp_path, config="", name="broker", extra_args=(), threads=2):
        self.port = free_port()
        self.admin_port = free_port()
        self.config_path = tmp_path / f"{name}.toml"
        self.config_path.write_text(config)
        args = [BIN / "switchboard-broker", "--config", self.config_path,
                "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
                "--node", name, "--threads", str(threads), *extra_args]
        super().__init__(args, tmp_path / f"{name}.log")
        wait_for(lambda: self.healthy() or not self.alive(), timeout=10, what=f"{name} healthz")
        assert self.alive(), f"{name} exited at start:\n{self.log()}"

    def healthy(self):
        return http_get(f"http://127.0.0.1:{self.admin_port}/healthz")[0] == 200

    def metrics(self):
        """The /metrics samples as {'name{labels}': value}."""
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/metrics")
        assert status == 200, body
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return samples

    def metric(self, key):
        return self.metrics().get(key, 0.0)


@pytest.fixture
def processes(request):
    """Collects started processes; stops them at the end and prints their logs if the test failed."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in started:
        p.stop()
        if failed:
            print(f"\n----- log of {' '.join(p.args[:1])} ({p.log_path}) -----\n{p.log()[-6000:]}")


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
