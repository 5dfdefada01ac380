"""KV reuse across turns on whatever device torch finds (CUDA on the GPU machine).

No model can be downloaded there, so the model is SmolLM2-135M's shape with seeded random
weights and the real SmolLM2 tokenizer (bench/gpu-assets/tokenizer): the replies are
nonsense, but the loop, the cache handling on the device and the greedy comparison are the
real ones. For each dtype (the backend's own: bf16 on CUDA; and fp32) and each session
length, the simulate loop runs re-encoding every prompt, then reusing each conversation's
state; it prints seconds per turn and how many greedy turns are identical, and ends with
`cuda_turn_cost_growth: R` (seconds per turn at the longest length / at the shortest, reuse
loop, backend dtype).

    python bench/gpu_prefix.py --tokenizer bench/gpu-assets/tokenizer [--turns 4 24] [--sessions 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_model(tokenizer_dir: str, out: Path, small: bool) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9)
    if small:  # a CPU smoke run of this script
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=shape["num_attention_heads"] // 3 or 1,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    template = Path(tokenizer_dir) / "chat_template.jinja"
    if template.exists():
        shutil.copy(template, out / "chat_template.jinja")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default=str(ROOT / "bench/gpu-assets/tokenizer"))
    parser.add_argument("--turns", type=int, nargs="+", default=[4, 24])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--small", action="store_true", help="a tiny model (CPU smoke test of this script)")
    args = parser.parse_args()

    import torch

    from cbtflow.dialogue import Party, Session, run_sessions
    from cbtflow.llm import Client, Endpoint, local

    work = Path(tempfile.mkdtemp(prefix="cbtflow-prefix-"))
    build_model(args.tokenizer, work / "model", args.small)
    endpoint = Endpoint(f"local/{work / 'model'}", chat_template=str(work / "model" / "chat_template.jinja"))
    loaded = local.load(endpoint)
    print(
        f"device {loaded.device}, {torch.cuda.get_device_name(0) if loaded.device == 'cuda' else 'cpu'}, "
        f"torch {torch.__version__}; KV reuse available: {loaded.prefixes is not None}"
    )
    sampling = {"temperature": 0.0, "max_tokens": args.max_tokens}
    party = Party(endpoint, sampling)

    def play(turns: int, reuse: bool) -> tuple[float, list[list[str]], dict]:
        loaded.prefixes.clear()  # nothing from the previous run's identical sessions
        sessions = [
            Session(f"You are a CBT therapist. Session {i}.", f"You are patient {i}, {20 + i} years old, low mood.", i)
            for i in range(args.sessions)
        ]
        client = Client()
        with loaded.options(reuse_prefixes=reuse):
            if loaded.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run_sessions(client, sessions, party, party, max_turns=turns)
            if loaded.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        return seconds, [[t["text"] for t in s.turns] for s in sessions], client.usage.totals()

    dtypes = [loaded.model.dtype] + ([torch.float32] if loaded.model.dtype != torch.float32 else [])
    print("| dtype | turns | loop | seconds | seconds per turn | prompt tokens | of which reused | identical turns |")
    print("|---|---|---|---|---|---|---|---|")
    per_turn = {}
    for dtype in dtypes:
        loaded.model.to(dtype)
        play(2, True)  # warm-up (kernels, allocator)
        for turns in args.turns:
            whole_s, whole, whole_u = play(turns, False)
            reuse_s, reused, reuse_u = play(turns, True)
            same = sum(a == b for x, y in zip(whole, reused) for a, b in zip(x, y))
            total = sum(map(len, whole))
            per_turn[(dtype, turns)] = reuse_s / turns
            for name, s, u in (("re-encode", whole_s, whole_u), ("reuse KV", reuse_s, reuse_u)):
                print(
                    f"| {str(dtype).removeprefix('torch.')} | {turns} | {name} | {s:.2f} | {s / turns:.3f} | "
                    f"{int(u['prompt_tokens'])} | {int(u['cached_prompt_tokens'])} | "
                    f"{f'{same}/{total}' if name == 'reuse KV' else ''} |"
                )
    first, last = min(args.turns), max(args.turns)
    print(f"cuda_turn_cost_growth: {per_turn[(dtypes[0], last)] / per_turn[(dtypes[0], first)]:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
