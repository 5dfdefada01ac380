"""A content-addressed store of every model call, safe on shared filesystems.

A paid call must never be made twice, so every reply is stored here the moment it returns.
On a cluster, jobs on different hosts share this directory over NFS or Lustre, where
SQLite's WAL mode is unsafe (its documentation: every process must be on one host, it needs
shared memory). So the store takes no lock at all: each entry is one immutable JSON file,
``entries/<key[:2]>/<key>.json``, written under a temporary name in the same directory and
renamed into place. A rename is atomic on local and network filesystems alike, so a reader
sees a whole entry or none, and a writer killed mid-write leaves only a temporary file that
no reader looks at.

A local batch (generated together, with one seed) is kept all-or-nothing: its entries name
the batch, and they count only once the batch's marker ``batches/<id>.done`` exists, written
last. A job killed mid-batch leaves entries without a marker; they are ignored, and the
rerun regenerates exactly that batch with the same seed. The key is a hash of everything
that determines the reply (endpoint identity, messages, sampling, seed, call kind) and
never a secret. Caches written by earlier versions (``calls.sqlite``) are migrated once.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cbtflow.io import sha256_json

log = logging.getLogger(__name__)
MIGRATED = ".migrated-from-calls.sqlite"


def call_key(endpoint_identity: dict[str, Any], payload: dict[str, Any]) -> str:
    return sha256_json({"endpoint": endpoint_identity, **payload})


def _write_once(path: Path, text: str) -> None:
    """Temporary file in the target's directory, flushed, then renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class CallCache:
    """Key → JSON reply, one file per entry under ``<dir>/entries``."""

    def __init__(self, directory: str | Path):
        self.root = Path(directory)
        self.entries = self.root / "entries"
        self.batches = self.root / "batches"
        self.entries.mkdir(parents=True, exist_ok=True)
        self.batches.mkdir(parents=True, exist_ok=True)
        self._costs: dict[str, float] = {}  # committed entries this process has read: key → cost
        self._migrate_sqlite()

    @property
    def path(self) -> Path:
        return self.root

    def _entry_path(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key}.json"

    def _committed(self, entry: dict[str, Any]) -> bool:
        return entry.get("batch") is None or (self.batches / f"{entry['batch']}.done").exists()

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:  # cannot happen with rename, but never crash a run on it
            log.warning("ignoring unreadable cache entry %s (%s)", path, err)
            return None

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._read(self._entry_path(key))
        return entry["reply"] if entry and self._committed(entry) else None

    def put(self, key: str, model: str, reply: dict[str, Any]) -> None:
        self.put_many([(key, model, reply)])

    def put_many(self, entries: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store entries; more than one are a batch that counts only when complete."""
        now = time.time()
        batch = sha256_json(sorted(key for key, _, _ in entries))[:24] if len(entries) > 1 else None
        for key, model, reply in entries:
            record = {"key": key, "model": model, "created": now, "batch": batch, "reply": reply}
            _write_once(self._entry_path(key), json.dumps(record, ensure_ascii=False))
        if batch:
            _write_once(self.batches / f"{batch}.done", json.dumps({"entries": len(entries), "created": now}))

    def _scan(self, skip: dict[str, float] | set[str] = frozenset()) -> Iterator[tuple[str, Path, dict[str, Any]]]:
        """Committed entries (key, path, record), leaving out the keys in ``skip``."""
        for shard in sorted(self.entries.iterdir()):
            if not shard.is_dir():
                continue
            for path in shard.iterdir():
                if path.suffix != ".json" or path.name.startswith(".") or path.stem in skip:
                    continue
                entry = self._read(path)
                if entry and self._committed(entry):
                    yield path.stem, path, entry

    def total_cost(self) -> float:
        """USD spent on every call stored here: the running total all jobs share. Entries
        are immutable, so each is read once per process and later scans read only new ones."""
        for key, _, entry in self._scan(skip=self._costs):
            self._costs[key] = float(entry["reply"].get("cost_usd") or 0.0)
        return sum(self._costs.values())

    def stats(self) -> dict[str, Any]:
        by_model: dict[str, int] = {}
        for _, _, entry in self._scan():
            by_model[entry["model"]] = by_model.get(entry["model"], 0) + 1
        return {
            "path": str(self.root),
            "entries": sum(by_model.values()),
            "by_model": dict(sorted(by_model.items())),
            "cost_usd": self.total_cost(),
        }

    def prune(self, older_than_days: float) -> int:
        cutoff = time.time() - older_than_days * 86400
        removed = 0
        for key, path, entry in list(self._scan()):
            if entry["created"] < cutoff:
                path.unlink(missing_ok=True)
                self._costs.pop(key, None)
                removed += 1
        return removed

    def _migrate_sqlite(self) -> None:
        """Copy a ``calls.sqlite`` cache (cbtflow before the file store) into entries, once.
        Opened read-only and immutable, so no lock is taken on a shared filesystem."""
        old, marker = self.root / "calls.sqlite", self.root / MIGRATED
        if not old.exists() or marker.exists():
            return
        import sqlite3

        with sqlite3.connect(f"file:{old}?mode=ro&immutable=1", uri=True) as conn:
            rows = conn.execute("SELECT key, model, reply, created FROM calls").fetchall()
        for key, model, reply, created in rows:
            if not self._entry_path(key).exists():
                record = {"key": key, "model": model, "created": created, "batch": None, "reply": json.loads(reply)}
                _write_once(self._entry_path(key), json.dumps(record, ensure_ascii=False))
        _write_once(marker, json.dumps({"entries": len(rows), "created": time.time()}))
        log.info("migrated %d entries from %s to the file store", len(rows), old)

    def close(self) -> None:
        """Nothing is held open between calls."""
