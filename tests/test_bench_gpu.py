"""bench/gpu.py's logic on a CPU (--dry-run): the same training loop, the project's finetune
path and batched generation on a tiny random model. The Unsloth and bitsandbytes numbers
need a CUDA GPU (see bench/RESULTS.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_dry_run_exercises_every_part(embedded_model, tmp_path):
    script = [sys.executable, str(ROOT / "bench/gpu.py"), "--dry-run", "--work", str(tmp_path)]
    done = subprocess.run(
        [*script, "--tokenizer", embedded_model],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| tiny | peft-cpu |" in out and "failed" not in out
    assert '"adapter_reloaded": true' in out and '"backend": "peft-cpu"' in out
    assert "| 1 | 8 |" in out and "| 2 | 16 |" in out
    assert out.strip().splitlines()[-1].startswith("unsloth_vs_peft_tokens_per_second: not measured")
    refused = subprocess.run([sys.executable, str(ROOT / "bench/gpu.py")], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "--dry-run" in refused.stderr, "no silent CPU numbers in place of GPU ones"
