"""The weight precision a local model generates and judges in (``bases.<name>.precision``).

On a CPU, decoding reads every weight once per step, so the bytes per weight set the
speed, and prompt encoding is bound by matrix-multiply throughput. Where the CPU has
native bfloat16 arithmetic (AVX512-BF16 or AMX, Intel since Cooper Lake and Sapphire
Rapids, AMD since Zen 4), torch's oneDNN kernels encode prompts in bfloat16 at about 2.4
times float32's tokens/s, and decode at four conversations at 2.2 times (int4, 4-bit
weights for decode steps: 3.4 times; bench/decode.py). Without it bfloat16 is emulated and
slower than float32. Greedy outputs differ from float32 once two candidates are closer than
bfloat16 can tell apart; bench/precision.py measures how often, and how far the judge's
scores and the cbt - instruct contrast move (bench/RESULTS.md). int4 agrees with float32
as often as bfloat16 does and is faster, so ``auto`` takes it where the CPU computes
bfloat16 natively. Training keeps its own precision (float32, or bf16 autocast where native).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PRECISIONS = ("auto", "float32", "bfloat16", "int4")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bfloat16 natively (read from its flags, without torch)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    return False


def resolve(precision: str, device: str) -> str:
    """What a model loads as: ``auto`` is bfloat16 on CUDA, int4 on CPUs with native
    bfloat16 (its kernel computes in bfloat16), float32 elsewhere; an explicit choice is kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"bases.<name>.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "int4" and device != "cpu":
        raise ValueError("bases.<name>.precision: int4 is a CPU path (its kernel is torch's CPU one); use bfloat16")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bfloat16"
    return "int4" if cpu_has_native_bf16() else "float32"


def torch_dtype(resolved: str):
    """The dtype of the model's tensors (int4 keeps bfloat16 beside its 4-bit copies)."""
    import torch

    return torch.float32 if resolved == "float32" else torch.bfloat16
