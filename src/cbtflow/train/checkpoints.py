"""Checkpoints a fine-tuning run can resume from after a lost node or a ``kill -9``.

``training.checkpoint_steps: N`` makes the trainer save every N optimizer steps into
``results/checkpoints/<model>/seed<seed>/``, beside the adapter on the same storage but not
inside the rule's output (Snakemake deletes a failed job's outputs, and the checkpoints
must outlive it). A checkpoint counts only once the trainer has finished writing it: a
callback then writes ``COMPLETE`` into it, so one cut off mid-save is ignored, never loaded,
and removed. The rerun resumes from the newest complete checkpoint (transformers restores
the optimizer, scheduler, RNG states, the data position and the log history), and the
directory is removed once the adapter is final unless ``training.keep_checkpoints``.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(adapter_dir: str | Path) -> Path:
    """``results/adapters/<model>/seed<seed>`` → ``results/checkpoints/<model>/seed<seed>``."""
    adapter = Path(adapter_dir)
    return adapter.parents[2] / "checkpoints" / adapter.parent.name / adapter.name


def complete_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    found = []
    for path in Path(directory).glob("checkpoint-*"):
        match = _STEP.match(path.name)
        if match and (path / MARKER).is_file() and (path / "trainer_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resume_point(directory: str | Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones (cut off mid-save) are removed."""
    root = Path(directory)
    if not root.is_dir():
        return None
    complete = complete_checkpoints(root)
    keep = {path for _, path in complete}
    for path in root.glob("*checkpoint-*"):
        if path not in keep:
            log.warning("ignoring and removing an incomplete checkpoint: %s", path)
            shutil.rmtree(path, ignore_errors=True)
    return complete[-1][1] if complete else None


def settings(train_cfg: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The trainer's save settings: every ``checkpoint_steps`` steps into ``directory``, or none."""
    steps = train_cfg.get("checkpoint_steps")
    if not steps:
        return {"save_strategy": "no"}
    return {"save_strategy": "steps", "save_steps": int(steps), "save_only_model": False, "output_dir": str(directory)}


def marker_callback():
    """A callback that marks each checkpoint complete once the trainer has written it."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                (path / MARKER).write_text(f"{state.global_step}\n", encoding="utf-8")

    return MarkComplete()


def finish(directory: Path, keep: bool) -> None:
    """Remove the checkpoints once the adapter is final, unless the config keeps them."""
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
        for parent in (directory.parent, directory.parent.parent):  # <model>/, then checkpoints/, once empty
            try:
                parent.rmdir()
            except OSError:
                break
