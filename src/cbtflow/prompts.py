"""Jinja prompt templates from ``resources/prompts``.

Templates are declared rule inputs, so editing one reruns exactly the stages that read
it; their hashes are written into every artifact built from them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from cbtflow.io import sha256_file


@lru_cache(maxsize=64)
def _template(path: str) -> jinja2.Template:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=False, trim_blocks=False, autoescape=False
    )
    return env.from_string(Path(path).read_text(encoding="utf-8"))


def render(path: str | Path, **variables: Any) -> str:
    try:
        return _template(str(path)).render(**variables).strip()
    except jinja2.UndefinedError as err:
        raise ValueError(f"prompt template {path}: {err}") from err


def template_hashes(paths: dict[str, str | Path]) -> dict[str, str]:
    return {name: sha256_file(path)[:16] for name, path in sorted(paths.items())}
