"""The LMDB environment under pressure: a full map or a full disk is a clear RESOURCE_EXHAUSTED
that leaves the ledger readable and writable again once there is room; closing waits for reads
in progress; another process's hold on an environment can be seen from outside."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tracecore.errors import ResourceExhausted, Unavailable
from tracecore.ledger.env import Env, in_use

NAMES = ("things",)
MIB = 1 << 20


def _fill(env: Env, start: int, value: bytes) -> int:
    """Writes ``value`` under keys start, start+1, ... one commit each until the ledger is
    full; returns the first key that did not fit."""
    key = start
    while True:
        try:
            env.write(lambda txn, k=key: txn.put(k.to_bytes(8, "big"), value,
                                                 db=env.dbs["things"]))
        except ResourceExhausted:
            return key
        key += 1


def test_a_write_past_the_largest_map_fails_naming_the_tenant_and_resumes_once_it_may_grow(
        tmp_path: Path) -> None:
    """At the map's limit a write fails RESOURCE_EXHAUSTED naming the tenant; what was written
    stays readable; raising the limit lets the same write through without reopening."""
    env = Env(tmp_path / "ledger", NAMES, owner="acme", map_size=MIB, max_map_size=2 * MIB)
    value = b"x" * 4000
    first_refused = _fill(env, 0, value)
    with pytest.raises(ResourceExhausted, match="acme"):
        env.write(lambda txn: txn.put(b"one more", value, db=env.dbs["things"]))
    with env.read() as txn:
        assert all(bytes(txn.get(k.to_bytes(8, "big"), db=env.dbs["things"])) == value
                   for k in range(first_refused))
    env.set_max_map_size(8 * MIB)
    env.write(lambda txn: txn.put(b"one more", value, db=env.dbs["things"]))
    assert env.map_size > 2 * MIB
    env.close()


_FULL_DISK = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from tracecore.errors import ResourceExhausted
    from tracecore.ledger.env import Env

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
    env = Env(Path(sys.argv[1]), ("things",), owner="acme", map_size=64 << 20)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, hard))
    value = b"y" * 4000
    written, refusal = 0, None
    while refusal is None:
        try:
            env.write(lambda txn: txn.put(written.to_bytes(8, "big"), value,
                                          db=env.dbs["things"]))
            written += 1
        except ResourceExhausted as exc:
            refusal = str(exc)
    with env.read() as txn:
        readable = sum(txn.get(k.to_bytes(8, "big"), db=env.dbs["things"]) is not None
                       for k in range(written))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))   # the disk has room again
    env.write(lambda txn: txn.put(b"after", value, db=env.dbs["things"]))
    with env.read() as txn:
        after = txn.get(b"after", db=env.dbs["things"]) is not None
    print(json.dumps({"written": written, "refusal": refusal, "readable": readable,
                      "after": after}))
""")


def test_a_full_disk_fails_resource_exhausted_and_writes_resume_once_there_is_room(
        tmp_path: Path) -> None:
    """With the file size capped (the disk full, as far as the ledger may use it) a commit fails
    RESOURCE_EXHAUSTED naming the tenant; every earlier commit reads back; once there is room the
    next write succeeds in the same process."""
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "ledger")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["written"] > 0
    assert "acme" in result["refusal"] and "disk" in result["refusal"]
    assert result["readable"] == result["written"]
    assert result["after"] is True


def test_closing_waits_for_a_read_in_progress_and_refuses_reads_after(tmp_path: Path) -> None:
    """A close (a tenant going offline) lets a read in progress finish, then every read and
    write answers Unavailable instead of touching a closed environment."""
    env = Env(tmp_path / "ledger", NAMES, owner="acme")
    env.write(lambda txn: txn.put(b"k", b"v", db=env.dbs["things"]))
    reading, may_finish, seen = threading.Event(), threading.Event(), []

    def reader() -> None:
        with env.read() as txn:
            reading.set()
            may_finish.wait(10)
            seen.append(bytes(txn.get(b"k", db=env.dbs["things"])))

    thread = threading.Thread(target=reader)
    thread.start()
    reading.wait(10)
    closer = threading.Thread(target=env.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close did not wait for the read in progress"
    may_finish.set()
    thread.join(10)
    closer.join(10)
    assert seen == [b"v"]
    with pytest.raises(Unavailable, match="ledger of tenant 'acme' is closed"), env.read():
        pass
    with pytest.raises(Unavailable, match="retry later"):
        env.write(lambda txn: None)


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tracecore.ledger.env import Env

    env = Env(Path(sys.argv[1]), ("things",), owner="acme", readonly=True)
    print("open", flush=True)
    time.sleep(60)
""")


def test_another_process_holding_an_environment_is_seen_until_it_dies(tmp_path: Path) -> None:
    """`in_use` sees a process that has the environment open, and sees it gone once the
    process is killed (no stale lock file fools it)."""
    path = tmp_path / "ledger"
    Env(path, NAMES, owner="acme").close()
    assert not in_use(path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert in_use(path)
    finally:
        holder.kill()
        holder.wait(10)
    assert not in_use(path)


def test_a_reader_opens_a_ledger_older_than_its_databases_and_finds_them_once_written(
        tmp_path: Path) -> None:
    """A ledger written before a release added a database opens read-only (the database is
    missing, not an error); once a writer creates it, the open reader finds it."""
    Env(tmp_path, ("codes",), owner="t").close()
    reader = Env(tmp_path, ("codes", "documents"), owner="t", readonly=True,
                 dupsort=("documents",))
    assert "documents" not in reader.dbs
    with pytest.raises(KeyError):
        reader.dbs["documents"]
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from tracecore.ledger.env import Env
        w = Env(Path({str(tmp_path)!r}), ("codes", "documents"), owner="t",
                dupsort=("documents",))
        w.write(lambda txn: txn.put(b"k", b"v", db=w.dbs["documents"]))
        w.close()
        """)], check=True, timeout=60)
    documents = reader.dbs["documents"]
    with reader.read() as txn:
        assert txn.get(b"k", db=documents) == b"v"
    reader.close()
