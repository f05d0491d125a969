"""One thread of a running process under a test's control, and which of a broker's threads a client
id belongs to.

A broker shard is one I/O thread (backend/shard.h); shard 0 runs on the main thread, shard N > 0 on
a thread named "shard-N" (net/io_threads.h). Stopping that thread alone, as a debugger does, makes
one shard fall behind the others deterministically.
"""
import contextlib
import ctypes
import os
import sys

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long
_PTRACE_DETACH = 17
_PTRACE_SEIZE = 0x4206
_PTRACE_INTERRUPT = 0x4207
_WALL = 0x40000000


def _ptrace(request, tid):
    if _libc.ptrace(request, tid, None, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


def thread_id(pid, name):
    """The id of the thread of `pid` named `name`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError(f"process {pid} has no thread named {name}")


@contextlib.contextmanager
def thread_stopped(process, name):
    """Stops the thread `name` of `process` (a conftest.Process) while the block runs; the rest of
    the process runs on. The thread goes on where it stopped at the end."""
    tid = thread_id(process.proc.pid, name)
    _ptrace(_PTRACE_SEIZE, tid)
    try:
        _ptrace(_PTRACE_INTERRUPT, tid)
        os.waitpid(tid, _WALL)  # returns once the thread has stopped
        yield
    finally:
        # An error of the block (or of the stop) is the one to report, not the detach's after it.
        if _libc.ptrace(_PTRACE_DETACH, tid, None, None) != 0 and sys.exc_info()[0] is None:
            err = ctypes.get_errno()
            raise OSError(err, f"ptrace detach {tid}: {os.strerror(err)}")


def _std_hash(data: bytes) -> int:
    """libstdc++'s std::hash of a string (std::_Hash_bytes, 64-bit, its default seed)."""
    mask = (1 << 64) - 1
    mul = (0xC6A4A793 << 32) + 0x5BD1E995

    def shift_mix(v):
        return v ^ (v >> 47)

    h = (0xC70F6907 ^ (len(data) * mul)) & mask
    aligned = len(data) & ~7
    for i in range(0, aligned, 8):
        word = int.from_bytes(data[i:i + 8], "little")
        h = ((h ^ (shift_mix(word * mul & mask) * mul & mask)) * mul) & mask
    if len(data) & 7:
        h = ((h ^ int.from_bytes(data[aligned:], "little")) * mul) & mask
    h = shift_mix(h) * mul & mask
    return shift_mix(h)


def home_shard(client_id, threads):
    """The shard whose thread holds the session of `client_id` (Broker::HomeShard)."""
    return _std_hash(client_id.encode()) % threads


def client_id_on(shard, threads, prefix):
    """The first client id "PREFIX-N" whose session lives on `shard`."""
    n = 0
    while home_shard(f"{prefix}-{n}", threads) != shard:
        n += 1
    return f"{prefix}-{n}"
