"""A content-addressed store of every model call, shared by concurrent jobs.

litellm's own disk cache is gone since 1.109, and a paid call must never be made twice,
so every reply is stored here the moment it returns. SQLite in WAL mode lets several
Snakemake jobs read and write at once; the key is a hash of everything that determines the
reply (endpoint identity, messages, sampling, seed, call kind) and never a secret.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cbtflow.io import sha256_json


def call_key(endpoint_identity: dict[str, Any], payload: dict[str, Any]) -> str:
    return sha256_json({"endpoint": endpoint_identity, **payload})


class CallCache:
    """Key → JSON reply, persisted in ``<dir>/calls.sqlite``."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / "calls.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
            " reply TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT reply FROM calls WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, reply: dict[str, Any]) -> None:
        self.put_many([(key, model, reply)])

    def put_many(self, entries: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store a batch in one transaction: a killed job keeps all of a batch or none of it,
        so a rerun regenerates exactly the batch that was in flight, with the same seed."""
        now = time.time()
        rows = [(key, model, json.dumps(reply, ensure_ascii=False), now) for key, model, reply in entries]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO calls (key, model, reply, created) VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def total_cost(self) -> float:
        """USD spent on every call stored here: the running total all jobs share."""
        with self._lock:
            row = self._conn.execute("SELECT SUM(json_extract(reply, '$.cost_usd')) FROM calls").fetchone()
        return float(row[0] or 0.0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            rows = self._conn.execute("SELECT model, COUNT(*) FROM calls GROUP BY model ORDER BY model").fetchall()
        return {"path": str(self.path), "entries": sum(n for _, n in rows), "by_model": dict(rows),
                "cost_usd": self.total_cost()}

    def prune(self, older_than_days: float) -> int:
        cutoff = time.time() - older_than_days * 86400
        with self._lock:
            removed = self._conn.execute("DELETE FROM calls WHERE created < ?", (cutoff,)).rowcount
            self._conn.execute("VACUUM")
        return removed

    def close(self) -> None:
        self._conn.close()
