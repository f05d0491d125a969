"""`switchboard --check`: a valid file exits 0; a bad one exits 2 with one line naming the file,
the line, the full key and what was expected. Without --check a bad file stops the proxy the same
way before it binds anything."""
import socket
import subprocess

import pytest

from conftest import BIN, ROOT
from proxy_fixtures import free_port

BASE = """\
[proxy]
admin = "127.0.0.1:{admin}"

[[listener]]
name = "mqtt"
bind = "127.0.0.1:{port}"
protocol = "{protocol}"
pool = "{listener_pool}"

[pool.brokers]
strategy = "least-connections"
{pool_extra}
[[pool.brokers.backend]]
name = "b1"
address = "127.0.0.1:1884"
weight = {weight}
"""


def config(tmp_path, name="c.toml", protocol="mqtt", listener_pool="brokers", pool_extra="",
           weight="1", port=None, admin=None):
    path = tmp_path / name
    path.write_text(BASE.format(protocol=protocol, listener_pool=listener_pool,
                                pool_extra=pool_extra, weight=weight,
                                port=port or free_port(), admin=admin or free_port()))
    return path


def check(path):
    return subprocess.run([BIN / "switchboard", "--check", "--config", path],
                          capture_output=True, text=True, timeout=10)


def test_valid_config_passes(tmp_path):
    r = check(config(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "valid (1 listeners, 1 pools)" in r.stdout


def test_example_config_passes():
    r = check(ROOT / "conf" / "switchboard.toml")
    assert r.returncode == 0, r.stderr


# (arguments of config(), the line of the error, the key, what the message must say)
BAD = {
    "unknown-key": (dict(pool_extra="stickyy = true\n"), 12, "pool.brokers.stickyy",
                    "unknown key"),
    "missing-pool": (dict(listener_pool="nope"), 8, "listener[0].pool",
                     'expected the name of a [pool.NAME] table, got "nope"'),
    "wrong-type-int": (dict(weight='"heavy"'), 16, "pool.brokers.backend[0].weight",
                       'expected an integer from 0 to 1000, got "heavy"'),
    "wrong-type-bool": (dict(pool_extra='sticky = "yes"\n'), 12, "pool.brokers.sticky",
                        'expected true or false, got "yes"'),
    "out-of-range": (dict(pool_extra="retries = 1000\n"), 12, "pool.brokers.retries",
                     "expected an integer from 0 to 100, got 1000"),
    "bad-choice": (dict(pool_extra='on_down = "panic"\n'), 12, "pool.brokers.on_down",
                   'expected one of "none", "shutdown-sessions", got "panic"'),
    "tcp-with-sticky": (dict(protocol="tcp", pool_extra="sticky = true\n"), 8,
                        "listener[0].pool", "a tcp listener needs a pool without sticky"),
    "hash-key-without-hashing": (dict(pool_extra='hash_key = "source-ip"\n'), 12,
                                 "pool.brokers.hash_key", 'only for strategy = "source-hash"'),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_refused_with_file_line_key_and_expectation(tmp_path, case):
    kwargs, line, key, expected = BAD[case]
    path = config(tmp_path, name=f"{case}.toml", **kwargs)
    r = check(path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{path}:{line}: {key}: " in r.stderr, r.stderr
    assert expected in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, "one line, one error"


def test_tcp_listener_refuses_a_client_id_hash(tmp_path):
    # A duplicate "strategy" is a TOML error; write this one by hand.
    path = tmp_path / "tcp-hash.toml"
    path.write_text(BASE.format(protocol="tcp", listener_pool="brokers", weight=1,
                                port=free_port(), admin=free_port(), pool_extra="")
                    .replace('strategy = "least-connections"',
                             'strategy = "source-hash"\nhash_key = "client-id"'))
    r = check(path)
    assert r.returncode == 2
    assert f"{path}:8: listener[0].pool: a tcp listener needs a pool" in r.stderr, r.stderr


@pytest.mark.parametrize("mode", [["--check"], []], ids=["check", "start"])
def test_an_address_that_does_not_resolve_is_the_files_error(tmp_path, mode):
    # A name that cannot resolve stops the proxy at its start as a configuration error (status 2,
    # the file and the key named), and --check says so first. ".invalid" never resolves (RFC
    # 6761); the timeout leaves room for a slow resolver.
    path = tmp_path / "unresolvable.toml"
    path.write_text(BASE.format(protocol="mqtt", listener_pool="brokers", weight=1,
                                port=free_port(), admin=free_port(), pool_extra="")
                    .replace("127.0.0.1:1884", "no-such-host.invalid:1884"))
    r = subprocess.run([BIN / "switchboard", *mode, "--config", path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert (f'{path}: pool.brokers backend "b1": address: cannot resolve "no-such-host.invalid"'
            in r.stderr), r.stderr


def test_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text("[[listener]\nname = 1\n")
    r = check(path)
    assert r.returncode == 2 and f"{path}:1: invalid TOML" in r.stderr, r.stderr
    r = check(tmp_path / "absent.toml")
    assert r.returncode == 2 and "absent.toml: cannot open the file" in r.stderr, r.stderr


def test_bad_config_stops_the_proxy_before_it_binds(tmp_path):
    port = free_port()
    path = config(tmp_path, pool_extra="stickyy = true\n", port=port)
    r = subprocess.run([BIN / "switchboard", "--config", path], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "pool.brokers.stickyy: unknown key" in r.stderr, r.stderr
    with socket.socket() as s:  # the listener's port was never taken
        s.bind(("127.0.0.1", port))


def test_listener_port_in_use_exits_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = config(tmp_path, port=taken.getsockname()[1])
        r = subprocess.run([BIN / "switchboard", "--config", path], capture_output=True,
                           text=True, timeout=10)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "listener mqtt: cannot listen on" in r.stderr, r.stderr
