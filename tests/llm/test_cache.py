"""The call cache as a shared-filesystem store: concurrent writers and readers, writers
killed mid-write, batches all-or-nothing, budget totals, and migration from calls.sqlite."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from cbtflow.llm import cache as cache_module
from cbtflow.llm.cache import CallCache

WRITER = """
import sys, time
from cbtflow.llm.cache import CallCache
cache = CallCache(sys.argv[1])
worker, n = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    key = f"{(i * 7919) % 97:02d}" + f"{i:062d}"          # workers overlap on every key
    cache.put(key, f"model-{i % 3}", {"text": f"reply {i}", "cost_usd": 0.01 * (i % 5)})
    other = f"{((i + 1) * 7919) % 97:02d}" + f"{i + 1:062d}"
    got = cache.get(other)
    assert got is None or got["text"] == f"reply {i + 1}", got
print(cache.total_cost())
"""


def test_many_processes_write_and_read_at_once_and_the_budget_total_is_right(tmp_path):
    n, workers = 150, 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(w), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    cache = CallCache(tmp_path)
    expected_cost = sum(0.01 * (i % 5) for i in range(n))
    assert cache.stats()["entries"] == n
    assert cache.total_cost() == pytest.approx(expected_cost)
    for i in range(n):
        key = f"{(i * 7919) % 97:02d}" + f"{i:062d}"
        assert cache.get(key) == {"text": f"reply {i}", "cost_usd": 0.01 * (i % 5)}
    assert not list(tmp_path.rglob("*.tmp")), "every writer finished its renames"


KILLED = """
import sys
from cbtflow.llm.cache import CallCache
cache = CallCache(sys.argv[1])
big = "x" * 2_000_000
i = 0
while True:
    cache.put(f"{i % 256:02x}" + f"{i:062d}", "m", {"text": big, "n": i})
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_no_corrupt_entry(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "entries").rglob("*.json"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = CallCache(tmp_path)
    stats = cache.stats()
    assert stats["entries"] >= 5
    for path in (tmp_path / "entries").rglob("*.json"):
        if not path.name.startswith("."):
            entry = json.loads(path.read_text())  # every visible entry is whole
            assert len(entry["reply"]["text"]) == 2_000_000
            assert cache.get(entry["key"])["n"] == entry["reply"]["n"]


def test_a_batch_counts_only_when_complete(tmp_path, monkeypatch):
    cache = CallCache(tmp_path)
    batch = [(f"{i:064d}", "local/m", {"text": str(i)}) for i in range(6)]
    real_write, written = cache_module._write_once, []

    def crash_after_four(path, text):
        if len(written) == 4:
            raise KeyboardInterrupt("killed mid-batch")
        written.append(path)
        real_write(path, text)

    monkeypatch.setattr(cache_module, "_write_once", crash_after_four)
    with pytest.raises(KeyboardInterrupt):
        cache.put_many(batch)
    monkeypatch.setattr(cache_module, "_write_once", real_write)
    assert len(written) == 4 and all(cache.get(key) is None for key, _, _ in batch), "no part of a torn batch counts"
    assert cache.stats()["entries"] == 0
    cache.put_many(batch)  # the rerun regenerates the whole batch
    assert [cache.get(key)["text"] for key, _, _ in batch] == [str(i) for i in range(6)]


def test_an_old_sqlite_cache_is_migrated_once(tmp_path):
    with sqlite3.connect(tmp_path / "calls.sqlite") as conn:
        conn.execute(
            "CREATE TABLE calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, reply TEXT NOT NULL, created REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO calls VALUES (?, ?, ?, ?)",
            [(f"{i:064d}", "gemini/x", json.dumps({"text": f"old {i}", "cost_usd": 0.5}), 1.0) for i in range(3)],
        )
    cache = CallCache(tmp_path)
    assert cache.get(f"{1:064d}") == {"text": "old 1", "cost_usd": 0.5}
    assert cache.total_cost() == pytest.approx(1.5) and (tmp_path / cache_module.MIGRATED).exists()
    (tmp_path / "entries").joinpath(f"{0:064d}"[:2], f"{0:064d}.json").unlink()
    assert CallCache(tmp_path).get(f"{0:064d}") is None, "a second open does not migrate again"
