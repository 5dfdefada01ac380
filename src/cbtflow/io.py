"""Atomic file output and content hashing.

Every artifact is written to a temporary file in the target's folder and renamed into
place, so a job killed halfway leaves no half-written file that a later run could mistake
for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file + rename (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextmanager
def atomic_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield ``<out_dir>.partial`` to build a directory in, and swap it into place only when
    the block ends without an error: a killed or failed job leaves the old directory (or
    none) and a ``.partial`` that the next attempt clears, never a half-built output."""
    out = Path(out_dir)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    yield staging
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def write_json(path: str | Path, obj: Any) -> Path:
    """Pretty, key-sorted JSON so that reruns with equal content give equal bytes."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    text = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
    return write_text_atomic(path, text)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete it and rerun the rule that makes it") from err


def read_jsonl(path: str | Path) -> list[Any]:
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err})") from err
    return rows


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_json(obj: Any) -> str:
    """Hash of a JSON value independent of key order (used for cache keys and provenance)."""
    return sha256_text(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_dir(path: str | Path, pattern: str = "*") -> str:
    """Hash of every file under ``path`` (names and contents), stable across machines."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob(pattern) if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def inline_page(directory: Path, data: dict[str, Any], title: str, shared: Sequence[Path] = ()) -> str:
    """A static page that opens from disk: ``directory``'s index.html with its one style sheet
    (*.css), the ``shared`` scripts then its own script (*.js), and ``data`` (JSON) inlined,
    since a file:// page can fetch nothing. The viewer and the rating kit are built this way."""
    page = (directory / "index.html").read_text(encoding="utf-8")
    # "</" inside the JSON would end the script element early; JSON allows "<\/" for it.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    (style,), (script,) = sorted(directory.glob("*.css")), sorted(directory.glob("*.js"))
    parts = {
        "__STYLE__": style.read_text(encoding="utf-8"),
        "__SCRIPT__": "\n".join(p.read_text(encoding="utf-8") for p in (*shared, script)),
        "__TITLE__": title.replace("<", "&lt;"),
        "__DATA__": payload,
    }
    for marker, text in parts.items():
        before, after = page.split(marker, 1)  # one pass each: a marker inside the data stays as it is
        page = before + text + after
    return page
