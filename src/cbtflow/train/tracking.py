"""Experiment tracking the way transformers and TRL users expect it (``training.report_to``).

``tensorboard`` writes event files beside the adapter (``<adapter>/runs``), ``wandb`` runs
offline into the same place unless ``WANDB_API_KEY`` is set, and ``mlflow`` logs to a file
store there unless ``MLFLOW_TRACKING_URI`` is set. Run names carry the model, the seed and
the hash of the recipe, so runs line up with the results tree. Only transformers' own
integrations log (loss, learning rate, grad norm); keys stay in the environment, never in
a file this writes.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from cbtflow.io import sha256_json

TRACKERS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb",), "mlflow": ("mlflow",)}
EVENTS = "runs"  # below the adapter directory


def run_name(model: str, seed: int, recipe: dict[str, Any]) -> str:
    return f"{model}-seed{seed}-{sha256_json(recipe)[:8]}"


def tracking(train_cfg: dict[str, Any], name: str, events_dir: Path) -> dict[str, Any]:
    """SFTConfig's tracking settings; sets the trackers' environment for this process.

    Raises ValueError naming ``training.report_to`` when a tracker's package is missing."""
    chosen = list(train_cfg.get("report_to") or [])
    for tracker in chosen:
        if tracker not in TRACKERS:
            raise ValueError(f"training.report_to: unknown tracker {tracker!r} (known: {sorted(TRACKERS)})")
        if not any(importlib.util.find_spec(p) for p in TRACKERS[tracker]):
            raise ValueError(
                f"training.report_to: {tracker!r} needs the {' or '.join(TRACKERS[tracker])} package "
                f"(pip install {TRACKERS[tracker][0]}), or remove it"
            )
    if not chosen:
        return {"report_to": [], "run_name": name}
    events_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(events_dir / name)
    if "wandb" in chosen:
        os.environ.setdefault("WANDB_DIR", str(events_dir))
        if not os.environ.get("WANDB_API_KEY"):
            os.environ["WANDB_MODE"] = "offline"
    if "mlflow" in chosen and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = (events_dir / "mlruns").resolve().as_uri()
    return {"report_to": chosen, "run_name": name}
