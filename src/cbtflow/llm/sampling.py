"""A role's sampling settings with the config schema's defaults: one set for every backend.

The defaults live in ``$defs/sampling`` of the config schema. A validated config already
carries them; backends fill them in again for calls made outside a config (the CLI, tests,
benchmarks), so a local and an API model never differ in, say, their longest reply.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from cbtflow.packaged import schema_path


@lru_cache(maxsize=1)
def sampling_defaults() -> dict[str, Any]:
    schema = yaml.safe_load(schema_path("config").read_text(encoding="utf-8"))
    return {k: v["default"] for k, v in schema["$defs"]["sampling"]["properties"].items() if "default" in v}


def with_defaults(sampling: dict[str, Any]) -> dict[str, Any]:
    return {**sampling_defaults(), **sampling}
