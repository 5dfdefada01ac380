"""One LoRA recipe, whichever training backend is available (train/backends/: Unsloth 4-bit
QLoRA on CUDA, transformers + peft elsewhere).

Every backend trains through TRL's ``SFTTrainer`` on examples we tokenize ourselves with the
base model's own chat template, so that the loss falls only on therapist (assistant)
tokens whatever the template: we render the conversation turn by turn and mark the tokens
each assistant message adds. Sessions longer than ``max_seq_length`` are split at turn
boundaries with the system prompt repeated, never cut mid-turn.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from cbtflow.io import atomic_dir, sha256_file, write_json
from cbtflow.llm.local import prefix_stable, render
from cbtflow.train import checkpoints, tracking
from cbtflow.train.backends import discover, select_backend, training_backend

log = logging.getLogger(__name__)
IGNORE = -100


# --------------------------------------------------------------------------- tokenization


def _render_ids(tokenizer, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    return tokenizer.encode(render(tokenizer, messages, add_generation_prompt), add_special_tokens=False)


def fold_system_prompt(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The system text moved into the first user turn (how Mistral's own tokenizer library
    handles a system prompt), which makes such templates prefix-stable."""
    if not messages or messages[0]["role"] != "system" or len(messages) < 2 or messages[1]["role"] != "user":
        return list(messages)
    first = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
    return [first, *messages[2:]]


def tokenize_with_mask(tokenizer, messages: Sequence[dict[str, str]]) -> dict[str, list[int]]:
    """Token ids and a 0/1 mask that is 1 exactly on the tokens of assistant messages.

    A template that is not prefix-stable with a system message gets the system text folded
    into the first user turn (``fold_system_prompt``) first.

    Each assistant message owns the characters between "everything before it + the
    generation prompt" and "everything up to and including it" (its content and its
    end-of-turn marker); the tokens overlapping that span are trained. Working in
    characters, not token counts, keeps this right when BPE merges across the boundary.
    """
    if not prefix_stable(tokenizer, messages):
        messages = fold_system_prompt(messages)
        if not prefix_stable(tokenizer, messages):
            raise ValueError(
                "chat template is not prefix-stable even with the system prompt folded into the first "
                "user turn; name a prefix-stable template for this base (bases.<name>.chat_template)"
            )
    text = render(tokenizer, messages, add_generation_prompt=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = render(tokenizer, messages[:index], add_generation_prompt=True)
        upto = render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        start, end = len(head), len(upto.rstrip())  # whitespace after the end-of-turn marker is not a target
        for position, (a, b) in enumerate(offsets):
            if a < end and b > start and text[max(a, start) : min(b, end)].strip():
                mask[position] = 1
    return {"input_ids": ids, "assistant_masks": mask}


def split_at_turns(tokenizer, messages: Sequence[dict[str, str]], max_length: int) -> list[list[dict[str, str]]]:
    """Split a long conversation into pieces that fit, each starting with the system prompt.

    A piece is the system message plus whole (user, assistant) exchanges; an exchange that
    alone is too long is dropped rather than cut mid-turn.
    """
    if len(_render_ids(tokenizer, messages, False)) <= max_length:
        return [list(messages)]
    system = [m for m in messages[:1] if m["role"] == "system"]
    body = list(messages[len(system) :])
    exchanges: list[list[dict[str, str]]] = []
    for message in body:
        if message["role"] == "user" or not exchanges:
            exchanges.append([message])
        else:
            exchanges[-1].append(message)
    pieces: list[list[dict[str, str]]] = []
    current: list[dict[str, str]] = []
    for exchange in exchanges:
        candidate = system + current + exchange
        if len(_render_ids(tokenizer, candidate, False)) <= max_length:
            current = current + exchange
            continue
        if current:
            pieces.append(system + current)
        current = exchange if len(_render_ids(tokenizer, system + exchange, False)) <= max_length else []
    if current:
        pieces.append(system + current)
    return [p for p in pieces if any(m["role"] == "assistant" for m in p)]


def tokenize_dataset(tokenizer, conversations: Sequence[Sequence[dict[str, str]]], max_length: int) -> list[dict]:
    rows = []
    for messages in conversations:
        for piece in split_at_turns(tokenizer, messages, max_length):
            row = tokenize_with_mask(tokenizer, piece)
            if any(row["assistant_masks"]):
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- training


def _plain_loss_trainer(sft_trainer: type) -> type:
    """SFTTrainer with transformers' own causal-LM loss on our labels.

    TRL 1.16 computes the loss through a chunked "fused" lm head that also yields entropy
    and token accuracy for its logs; on a CPU that path ran at 0.55x the tokens/s of a
    plain Trainer (bench/finetune.py). The loss is the same mean cross-entropy over the
    unmasked (therapist) tokens; dataset preparation, collation and the training loop stay
    TRL's. A backend that patches its own loss (TrainingBackend.own_loss) keeps SFTTrainer.
    """
    from transformers import Trainer

    class PlainLossSFTTrainer(sft_trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return PlainLossSFTTrainer


TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def library_versions() -> dict[str, str]:
    """The versions of what trains (and of every training backend's own packages) in provenance."""
    out = {"python": platform.python_version()}
    extra = [name for cls in discover().values() for name in cls.packages]
    for name in dict.fromkeys((*TRAINING_LIBRARIES, *extra)):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sft_config(
    train_cfg: dict[str, Any],
    backend: str,
    seed: int,
    output_dir: str,
    has_validation: bool,
    **overrides: Any,
):
    """TRL's SFTConfig for our recipe. Imported here, after the backend is loaded: Unsloth
    patches ``trl.SFTConfig``/``SFTTrainer`` when it is imported, so names bound before
    that would stay the unpatched classes. ``overrides``: checkpointing
    (``cbtflow.train.checkpoints.settings``) and tracking (``cbtflow.train.tracking``)."""
    from trl import SFTConfig

    trainer = training_backend(backend)
    options = {
        "output_dir": output_dir,
        "save_strategy": "no",
        "report_to": [],
        **overrides,
    }
    return SFTConfig(
        **options,
        seed=seed,
        data_seed=seed,
        learning_rate=float(train_cfg["learning_rate"]),
        num_train_epochs=float(train_cfg["epochs"]),
        per_device_train_batch_size=int(train_cfg["batch_size"]),
        per_device_eval_batch_size=int(train_cfg["batch_size"]),
        gradient_accumulation_steps=int(train_cfg.get("grad_accum", 1)),
        warmup_steps=int(train_cfg.get("warmup_steps", 0)),
        lr_scheduler_type=train_cfg.get("lr_scheduler", "linear"),
        weight_decay=float(train_cfg.get("weight_decay", 0.0)),
        max_length=int(train_cfg["max_seq_length"]),
        logging_steps=1,
        save_total_limit=2,  # the newest checkpoint and the one before it, should the newest be cut off
        eval_strategy="epoch" if has_validation else "no",
        dataloader_num_workers=0,
        use_cpu=trainer.on_cpu,
        disable_tqdm=False,
        **trainer.mixed_precision(),
        # TRL turns activation checkpointing on by default; it buys GPU memory with ~30% more
        # compute, a bad trade for a small model on a CPU (bench/finetune.py).
        gradient_checkpointing=bool(train_cfg.get("gradient_checkpointing", not trainer.on_cpu)),
    )


def build_trainer(
    model,
    tokenizer,
    train_rows: Sequence[dict],
    val_rows: Sequence[dict],
    args,
    backend: str,
    callbacks: Sequence[Any] = (),
):
    """The SFTTrainer the finetune rule trains with, on our pre-tokenized rows (TRL turns
    ``assistant_masks`` into labels; tests check its collated batch)."""
    from datasets import Dataset
    from trl import SFTTrainer

    trainer_class = SFTTrainer if training_backend(backend).own_loss else _plain_loss_trainer(SFTTrainer)
    return trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(list(train_rows)),
        eval_dataset=Dataset.from_list(list(val_rows)) if val_rows else None,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def train_adapter(
    *,
    base: str,
    dataset_dir: str,
    recipe: dict[str, Any],
    seed: int,
    out_dir: str,
    backend: str | None = None,
    threads: int = 1,
    work_dir: str | Path | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Train one adapter; writes it with ``train_log.json`` and ``provenance.json`` to ``out_dir``.

    ``work_dir`` (default ``cbtflow.train.checkpoints.checkpoint_dir(out_dir)``) holds the
    run's checkpoints and tracker files while it trains: a rerun after a crash resumes
    from its newest complete checkpoint, and the tracker files move beside the adapter at
    the end. ``name``: the tracker's run name.

    The backend is loaded first: with Unsloth, nothing from transformers, peft or trl may
    be imported before it (it patches them on import)."""
    import torch

    backend = backend or select_backend()
    torch.set_num_threads(max(1, threads))
    # The LoRA matrices are initialised when the backend builds the model, before the
    # trainer seeds anything: unseeded, two runs of one seed trained different adapters
    # (the loss agreed at step 1, where LoRA's B = 0 hides A, and drifted from step 2).
    torch.manual_seed(seed)
    train_cfg = recipe["training"]
    model, tokenizer = training_backend(backend).load(base, recipe, seed)
    from datasets import load_from_disk

    data = load_from_disk(dataset_dir)
    max_len = int(train_cfg["max_seq_length"])
    train_rows = tokenize_dataset(tokenizer, data["train"]["messages"], max_len)
    val_rows = tokenize_dataset(tokenizer, data["validation"]["messages"], max_len) if len(data["validation"]) else []
    if not train_rows:
        raise ValueError(f"{dataset_dir}: no training example has a therapist turn within max_seq_length={max_len}")
    work = Path(work_dir) if work_dir else checkpoints.checkpoint_dir(out_dir)
    resume = checkpoints.resume_point(work)
    if resume is not None:
        log.info("resuming from %s (step %s)", resume, resume.name.rsplit("-", 1)[1])
    elif train_cfg.get("checkpoint_steps"):
        log.info("no complete checkpoint in %s: training from step 0", work)
    with atomic_dir(out_dir) as staging:
        overrides = {
            **checkpoints.settings(train_cfg, work),
            **tracking.tracking(train_cfg, name or Path(out_dir).name, work / tracking.EVENTS),
        }
        output_dir = overrides.pop("output_dir", str(staging / "trainer"))  # the checkpoints' home, when saved
        args = sft_config(train_cfg, backend, seed, output_dir, bool(val_rows), **overrides)
        callbacks = [checkpoints.marker_callback()] if train_cfg.get("checkpoint_steps") else []
        trainer = build_trainer(model, tokenizer, train_rows, val_rows, args, backend, callbacks)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        wall = time.perf_counter() - start
        trained_tokens = sum(len(r["input_ids"]) for r in train_rows) * float(train_cfg["epochs"])
        model.save_pretrained(str(staging))
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        if (work / tracking.EVENTS).is_dir():  # the tracker's files, from every attempt, beside the adapter
            shutil.copytree(work / tracking.EVENTS, staging / tracking.EVENTS, dirs_exist_ok=True)
        # The trainer's own log history: restored from the checkpoint on resume, so the
        # curve runs from step 1 whether or not the run was interrupted.
        history = [{"step": h.get("step"), **h} for h in trainer.state.log_history]
        losses = [h["loss"] for h in history if "loss" in h]
        train_log = {
            "backend": backend,
            "steps": trainer.state.global_step,
            "wall_seconds": round(wall, 3),
            "tokens_seen": int(trained_tokens),
            "tokens_per_second": round(trained_tokens / wall, 2) if wall else None,
            "peak_memory_mb": round(training_backend(backend).peak_memory_mb(), 1),
            "train_examples": len(train_rows),
            "validation_examples": len(val_rows),
            "trained_token_fraction": round(trained_fraction(train_rows), 4),
            "loss_curve": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
            "eval_curve": [{"epoch": h["epoch"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h],
            "first_quarter_loss": _quarter_mean(losses, first=True),
            "last_quarter_loss": _quarter_mean(losses, first=False),
            "resumed_from_step": int(resume.name.rsplit("-", 1)[1]) if resume else None,
            "report_to": list(overrides["report_to"]),
            "run_name": overrides["run_name"],
        }
        write_json(staging / "train_log.json", train_log)
    checkpoints.finish(work, keep=bool(train_cfg.get("keep_checkpoints")))
    return train_log


def select_and_train(**kwargs: Any) -> tuple[str, dict[str, Any]]:
    """The first available backend and ``train_adapter`` on it: what a finetune job runs, in
    its own process or in its worker of the run's local model server (llm/local/forkserver.py)."""
    backend = select_backend()
    log.info("backend: %s", backend)
    return backend, train_adapter(backend=backend, **kwargs)


def trained_fraction(rows: Sequence[dict[str, Any]]) -> float:
    """Share of the tokens that carry loss (therapist tokens)."""
    return sum(sum(r["assistant_masks"]) for r in rows) / max(1, sum(len(r["input_ids"]) for r in rows))


def _quarter_mean(values: Sequence[float], first: bool) -> float | None:
    if not values:
        return None
    n = max(1, len(values) // 4)
    part = values[:n] if first else values[-n:]
    return round(sum(part) / len(part), 6)


def provenance(*, base: str, dataset_jsonl: str, recipe: dict[str, Any], seed: int, backend: str) -> dict[str, Any]:
    base_path = Path(base)
    weights = {p.name: sha256_file(p) for p in sorted(base_path.glob("*.safetensors"))} if base_path.is_dir() else None
    return {
        "base": base,
        "base_weights_sha256": weights,
        "dataset_sha256": sha256_file(dataset_jsonl),
        "recipe": json.loads(json.dumps(recipe)),
        "seed": seed,
        "backend": backend,
        "libraries": library_versions(),
    }
