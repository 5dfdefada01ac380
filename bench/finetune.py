"""Our finetune step (TRL SFTTrainer, therapist-only loss) vs a plain transformers Trainer +
peft loop on the same tokenized data, same machine, same run.

Each variant runs in its own process (so peak RSS is its own), on the default config's
first model recipe and the dataset of a finished default run (or a small synthetic one).
Prints a table and ends with `finetune_tokens_per_second_ratio: R` (ours / plain).

    python bench/finetune.py [--base DIR] [--dataset DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def synthetic_dataset(out: Path) -> Path:
    from cbtflow.data.dataset import save_dataset_dict

    turns = [
        "Welcome back. How has your week been, and what should we focus on today?",
        "Pretty low. I stayed in bed most of the weekend.",
        "What went through your mind on Saturday morning?",
        "That there was no point getting up.",
        "Let's look at the evidence for that thought together.",
    ]
    rows = []
    for i in range(8):
        messages = [
            {"role": "system", "content": "You are a CBT therapist."},
            {"role": "user", "content": "[The client has arrived for the session.]"},
        ]
        messages += [
            {"role": "assistant" if k % 2 == 0 else "user", "content": f"{t} ({i})"} for k, t in enumerate(turns)
        ]
        rows.append(
            {
                "course": f"c{i}",
                "session": 1,
                "phase": "p",
                "split": "train" if i < 6 else "validation",
                "messages": messages,
            }
        )
    save_dataset_dict(rows, out)
    return out


def worker(kind: str, base: str, dataset: str, recipe: dict, seed: int) -> dict:
    import torch

    from cbtflow.train import finetune
    from cbtflow.train.backends import training_backend

    torch.set_num_threads(2)
    if kind == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            log = finetune.train_adapter(
                base=base,
                dataset_dir=dataset,
                recipe=recipe,
                seed=seed,
                out_dir=f"{tmp}/adapter",
                backend="peft-cpu",
                threads=2,
            )
        return {
            "tokens": log["tokens_seen"],
            "seconds": log["wall_seconds"],
            "steps": log["steps"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    # Plain transformers Trainer + peft on the same tokenized rows and labels.
    from datasets import Dataset, load_from_disk
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model, tokenizer = training_backend("peft-cpu").load(base, recipe, seed)
    rows = finetune.tokenize_dataset(
        tokenizer, load_from_disk(dataset)["train"]["messages"], recipe["training"]["max_seq_length"]
    )
    data = Dataset.from_list(
        [
            {
                "input_ids": r["input_ids"],
                "attention_mask": [1] * len(r["input_ids"]),
                "labels": [t if m else -100 for t, m in zip(r["input_ids"], r["assistant_masks"])],
            }
            for r in rows
        ]
    )
    t = recipe["training"]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            seed=seed,
            learning_rate=float(t["learning_rate"]),
            num_train_epochs=float(t["epochs"]),
            per_device_train_batch_size=int(t["batch_size"]),
            gradient_accumulation_steps=int(t.get("grad_accum", 1)),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=data, data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True)
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {
        "tokens": int(sum(len(r["input_ids"]) for r in rows) * float(t["epochs"])),
        "seconds": seconds,
        "steps": trainer.state.global_step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=str(ROOT / "resources/models/smollm2-135m"))
    parser.add_argument("--dataset", default=str(ROOT / "results/datasets/smollm2.hf"))
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--worker", choices=["ours", "plain"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    recipe = config["models"][sorted(config["models"])[0]]
    if args.epochs:
        recipe["training"]["epochs"] = args.epochs
    if args.worker:
        print(json.dumps(worker(args.worker, args.base, args.dataset, recipe, args.seed)))
        return 0
    dataset = args.dataset
    if not Path(dataset).exists():
        dataset = str(synthetic_dataset(Path(tempfile.mkdtemp()) / "bench.hf"))
    results = {}
    for kind in ("plain", "ours"):  # baseline first, then ours, same machine, same run
        done = subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--base", args.base, "--dataset", dataset]
            + (["--epochs", str(args.epochs)] if args.epochs else []),
            capture_output=True,
            text=True,
            check=True,
        )
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'variant':<34}{'steps':>6}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'peak RSS MB':>13}")
    for kind, label in (("plain", "transformers Trainer + peft"), ("ours", "cbtflow (TRL SFTTrainer)")):
        r = results[kind]
        print(
            f"{label:<34}{r['steps']:>6}{r['tokens']:>8}{r['seconds']:>9.1f}{r['tokens'] / r['seconds']:>10.1f}"
            f"{r['peak_rss_mb']:>13.0f}"
        )
    ratio = (results["ours"]["tokens"] / results["ours"]["seconds"]) / (
        results["plain"]["tokens"] / results["plain"]["seconds"]
    )
    print(f"finetune_tokens_per_second_ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
