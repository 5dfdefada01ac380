"""GPU benchmarks: Unsloth 4-bit QLoRA against transformers + peft + bitsandbytes on identical
batches, the project's own finetune path on CUDA, and batched generation in bf16.

    python bench/gpu.py [--shapes small,8b] [--steps 12] [--work DIR]    # on a CUDA GPU
    python bench/gpu.py --dry-run                                       # CPU: the logic, tiny shapes

Models are randomly initialised from a config of the real architecture (throughput and
memory do not depend on weight values): `small` is SmolLM2-135M's shape, `8b` Llama-3.1-8B's.
Each training backend runs in its own subprocess (Unsloth must be imported before
transformers, peft and trl, and peak VRAM must not carry over). Token ids are drawn once
from a seeded generator and saved, so both backends train on the same batches with the
LoRA recipe of experiments/paper.yaml. Prints a table and ends with
`unsloth_vs_peft_tokens_per_second: <ratio>` (8b shape when run, else small).
bench/gpu_run.sh installs the wheels it needs (bench/gpu_wheels.sh fetches them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    # SmolLM2-135M (the embedded model's architecture).
    "small": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
    },
    # Llama-3.1-8B.
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
    # For --dry-run on a CPU: the same code, seconds instead of minutes.
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 49152,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    },
}
# experiments/paper.yaml's recipe (r 16, alpha 16, all linear projections, batch 2).
LORA = {
    "r": 16,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def make_model(shape: str, out: Path, tokenizer_dir: Path | None) -> Path:
    """A randomly initialised Llama-architecture checkpoint (bf16 on CUDA) with a tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (out / "config.json").exists():  # weights kept from an earlier run; the tokenizer is refreshed
        if tokenizer_dir:
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
        return out
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], torch_dtype="bfloat16" if device == "cuda" else "float32")
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer_dir:
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    del model
    return out


def make_batches(path: Path, vocab: int, steps: int, batch: int, seq: int) -> Path:
    import torch

    generator = torch.Generator().manual_seed(1234)
    torch.save(torch.randint(10, vocab, (steps, batch, seq), generator=generator), path)
    return path


def train_worker(backend: str, model_dir: str, batches_path: str, warmup: int) -> dict:
    """One backend's 4-bit QLoRA steps on the saved batches; run in a fresh process."""
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # before transformers, peft and trl

        model, _ = FastLanguageModel.from_pretrained(model_name=model_dir, max_seq_length=4096, load_in_4bit=True)
        model = FastLanguageModel.get_peft_model(
            model,
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            use_gradient_checkpointing="unsloth",
            random_state=0,
        )
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    if backend == "peft-bnb":
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=torch.bfloat16,
            quantization_config=(
                BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
            ),
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    elif backend == "peft-cpu":  # --dry-run: the same loop without quantization
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if backend != "unsloth":
        model = get_peft_model(
            model,
            LoraConfig(
                r=LORA["r"],
                lora_alpha=LORA["alpha"],
                lora_dropout=LORA["dropout"],
                target_modules=LORA["target_modules"],
                task_type="CAUSAL_LM",
            ),
        )
    device = "cuda" if cuda else "cpu"
    batches = torch.load(batches_path)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens, start = 0, None
    for step, ids in enumerate(batches):
        if step == warmup:
            if cuda:
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        ids = ids.to(device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += ids.numel()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "backend": backend,
        "tokens_per_second": tokens / seconds,
        "timed_steps": len(batches) - warmup,
        "peak_vram_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "final_loss": float(loss.detach()),
    }


def run_worker(kind: str, *args: str | Path, log_dir: Path) -> dict:
    """Run one part in a fresh process (Unsloth must be imported before transformers, and peak
    VRAM must not carry over); its stderr goes to `log_dir/<kind>-<n>.log` so a failure on the
    device can be read whole, and a short tail comes back in the result."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{kind}-{len(list(log_dir.glob(kind + '-*.log')))}.log"
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", kind, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return {"error": " / ".join(tail) or f"exit {done.returncode}", "log": str(log)}
    return json.loads(lines[-1])


def finetune_path(model_dir: Path, work: Path, backend: str) -> dict:
    """The project's finetune rule code on this device with one backend: a tiny dataset, one
    adapter saved, then reloaded with PEFT on the plain base and used to generate. Nothing
    here imports transformers or peft before `train_adapter` has (Unsloth patches them on
    import, as in the rule's own process)."""
    from cbtflow.data.dataset import save_dataset_dict
    from cbtflow.train.finetune import train_adapter

    messages = [
        {"role": "system", "content": "You are a CBT therapist."},
        {"role": "user", "content": "[The client has arrived for the session.]"},
        {"role": "assistant", "content": "Welcome. What would you like to focus on today?"},
        {"role": "user", "content": "My low mood at work."},
        {"role": "assistant", "content": "Let's look at the thoughts that come up there."},
    ]
    rows = [
        {
            "id": f"c{i}",
            "course": f"c{i}",
            "session": 1,
            "phase": "p",
            "split": "train" if i < 6 else "validation",
            "messages": messages,
        }
        for i in range(8)
    ]
    work.mkdir(parents=True, exist_ok=True)
    save_dataset_dict(rows, work / "dataset.hf")
    recipe = {
        "lora": {**LORA, "r": 8, "alpha": 16},
        "training": {"learning_rate": 1e-4, "epochs": 1, "batch_size": 2, "max_seq_length": 256},
    }
    log = train_adapter(
        base=str(model_dir),
        dataset_dir=str(work / "dataset.hf"),
        recipe=recipe,
        seed=1,
        out_dir=str(work / "adapter"),
        backend=backend,
    )
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else None)
    reloaded = PeftModel.from_pretrained(base.to(device), str(work / "adapter"))
    out = reloaded.generate(torch.tensor([[11, 12, 13]], device=device), max_new_tokens=4, do_sample=False)
    return {
        "backend": backend,
        "steps": log["steps"],
        "tokens_per_second": log["tokens_per_second"],
        "adapter_reloaded": out.shape[1] == 7,
    }


def generation(model_dir: Path, batch_sizes: list[int], new_tokens: int) -> list[dict]:
    """The local backend (cbtflow.llm.local, bf16 on CUDA): tokens/s at each batch size."""
    from cbtflow.llm import Endpoint, local

    endpoint = Endpoint(f"local/{model_dir}")
    local.generate_batch(endpoint, [[{"role": "user", "content": "warm up"}]], {"max_tokens": 4}, seed=0)
    rows = []
    for batch in batch_sizes:
        conversations = [
            [
                {"role": "system", "content": "You are a client in therapy."},
                {"role": "user", "content": f"How has your week been, session {i}?"},
            ]
            for i in range(batch)
        ]
        start = time.perf_counter()
        replies = local.generate_batch(endpoint, conversations, {"temperature": 0.0, "max_tokens": new_tokens}, seed=1)
        seconds = time.perf_counter() - start
        generated = sum(r["completion_tokens"] for r in replies)
        rows.append({"batch": batch, "generated_tokens": generated, "tokens_per_second": generated / seconds})
    return rows


def tokenizer_source() -> Path | None:
    """The small tokenizer the project already has: the prepared embedded model's."""
    for candidate in (
        ROOT / "resources/models/smollm2-135m",
        ROOT / ".cbtflow-cache/test-models/smollm2-135m",
        ROOT / "bench/gpu-assets/tokenizer",
    ):
        if (candidate / "tokenizer.json").exists():
            return candidate
    return None


WORKERS = {
    "train": lambda backend, model_dir, batches, warmup: train_worker(backend, model_dir, batches, int(warmup)),
    "finetune": lambda backend, model_dir, work: finetune_path(Path(model_dir), Path(work), backend),
    "generate": lambda model_dir, sizes, new_tokens: {
        "rows": generation(Path(model_dir), [int(b) for b in sizes.split(",")], int(new_tokens))
    },
}


def train_table(
    shape: str, model_dir: Path, batches: Path, backends: list[str], steps: int, logs: Path
) -> float | None:
    """One shape's training rows; the Unsloth / peft + bnb throughput ratio when both ran."""
    results = {b: run_worker("train", b, model_dir, batches, min(2, steps - 1), log_dir=logs) for b in backends}
    for backend, r in results.items():
        if "error" in r:
            print(f"| {shape} | {backend} | failed: {r['error'][-160:]} | | |", flush=True)
        else:
            vram = f"{r['peak_vram_mb']:.0f}" if r["peak_vram_mb"] else "—"
            print(
                f"| {shape} | {backend} | {r['tokens_per_second']:.0f} | {vram} | {r['final_loss']:.3f} |", flush=True
            )
    if all("error" not in results.get(b, {"error": 1}) for b in ("unsloth", "peft-bnb")):
        return results["unsloth"]["tokens_per_second"] / results["peft-bnb"]["tokens_per_second"]
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="small,8b")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--work", help="keep models, batches and worker logs here (default: a temporary directory)")
    parser.add_argument("--dry-run", action="store_true", help="CPU check of the logic on a tiny shape")
    parser.add_argument("--tokenizer", help="a directory with tokenizer files (default: the prepared embedded model)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *worker_args = args.worker
        print(json.dumps(WORKERS[kind](*worker_args)))
        return 0
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("no CUDA device: run with --dry-run to check the logic on a CPU", file=sys.stderr)
        return 2
    shapes = ["tiny"] if args.dry_run else args.shapes.split(",")
    backends = ["peft-cpu"] if args.dry_run else ["unsloth", "peft-bnb"]
    steps, seq = (3, 64) if args.dry_run else (args.steps, args.seq)
    work = Path(args.work or tempfile.mkdtemp(prefix="cbtflow-gpu-"))
    logs = work / "logs"
    work.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    print(f"device: {device}; torch {torch.__version__}; shapes {shapes}; {steps} steps of batch 2 × {seq} tokens")
    tokenizer = Path(args.tokenizer) if args.tokenizer else tokenizer_source()
    small_shape = shapes[0] if args.dry_run else "small"
    small = make_model(small_shape, work / f"model-{small_shape}", tokenizer)
    # The small model's parts first: they take seconds, so a time limit on the device can
    # only cut the 8b rows, which come last.
    if tokenizer:
        for backend in backends:
            print(
                f"\nfinetune rule code, {backend}:",
                json.dumps(run_worker("finetune", backend, small, work / f"ft-{backend}", log_dir=logs)),
                flush=True,
            )
        sizes = "1,2" if args.dry_run else "1,8,32"
        generated = run_worker("generate", small, sizes, 8 if args.dry_run else 128, log_dir=logs)
        print("\n| batch | generated tokens | tokens/s |\n|---|---|---|")
        for row in generated.get("rows", []):
            print(f"| {row['batch']} | {row['generated_tokens']} | {row['tokens_per_second']:.1f} |", flush=True)
        if "error" in generated:
            print(f"generation failed: {generated['error']}")
    else:
        print("\nno tokenizer files found (prepare the embedded model, or put them in bench/gpu-assets/tokenizer)")
    print("\n| shape | backend | tokens/s | peak VRAM MB | final loss |\n|---|---|---|---|---|", flush=True)
    ratios = {}
    for shape in shapes:
        model_dir = small if shape == small_shape else make_model(shape, work / f"model-{shape}", tokenizer)
        batches = make_batches(work / f"batches-{shape}.pt", SHAPES[shape]["vocab_size"], steps, 2, seq)
        ratio = train_table(shape, model_dir, batches, backends, steps, logs)
        if ratio is not None:
            ratios[shape] = ratio
            print(f"| {shape} | unsloth / peft-bnb | {ratio:.3f}× | | |", flush=True)
    headline = ratios.get("8b", ratios.get("small"))
    print(
        f"\nunsloth_vs_peft_tokens_per_second: {headline:.3f}"
        if headline is not None
        else "\nunsloth_vs_peft_tokens_per_second: not measured (needs a CUDA GPU with unsloth and bitsandbytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
