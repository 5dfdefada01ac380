#!/usr/bin/env bash
# Prepare what bench/gpu.py needs on a GPU machine that has CUDA torch, transformers, peft
# and accelerate but no internet: the missing wheels (unsloth, unsloth_zoo, bitsandbytes, trl,
# datasets and their own dependencies, never torch or the CUDA libraries) and the small
# tokenizer files of the embedded model. Output: bench/gpu-assets/ (git-ignored), the wheels
# split into folders of at most 60 MiB so that each travels in one device call's `carry`.
#
#   bash bench/gpu_wheels.sh            # then, on the device, per folder: bash bench/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
assets=bench/gpu-assets
rm -rf "$assets" && mkdir -p "$assets/all"
# Versions of envs/cuda-train.yaml, resolved for the GPU image's torch; --no-deps for what the
# image already has, so no CUDA wheel is fetched.
python -m pip download --quiet --dest "$assets/all" --only-binary :all: --no-deps \
  unsloth==2026.10.9 bitsandbytes==0.50.2 trl==1.15.0 datasets==4.8.5
python -m pip download --quiet --dest "$assets/all" --only-binary :all: \
  "unsloth_zoo" "cut_cross_entropy" "tyro" "msgspec" "hf_transfer" "sentencepiece" "protobuf" \
  "xxhash" "multiprocess" "dill<0.4.2" "pyarrow" "fsspec<=2026.2.0" \
  --no-deps
python - "$assets" <<'PY'
import shutil, sys
from pathlib import Path
assets = Path(sys.argv[1])
limit, part, used = 60 * 2**20, 0, 0
for wheel in sorted((assets / "all").glob("*.whl"), key=lambda p: -p.stat().st_size):
    size = wheel.stat().st_size
    if used and used + size > limit:
        part, used = part + 1, 0
    target = assets / f"wheels-{part}"
    target.mkdir(exist_ok=True)
    shutil.move(str(wheel), target / wheel.name)
    used += size
shutil.rmtree(assets / "all")
for folder in sorted(assets.glob("wheels-*")):
    total = sum(p.stat().st_size for p in folder.iterdir())
    print(f"{folder}: {len(list(folder.iterdir()))} wheels, {total / 2**20:.1f} MiB")
PY
tok=""
for candidate in resources/models/smollm2-135m .cbtflow-cache/test-models/smollm2-135m; do
  if [ -f "$candidate/tokenizer.json" ]; then tok="$candidate"; break; fi
done
if [ -z "$tok" ]; then echo "prepare the embedded model first (snakemake resources/models/smollm2-135m)" >&2; exit 1; fi
mkdir -p "$assets/tokenizer"
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$tok"/special_tokens_map.json "$assets/tokenizer/" 2>/dev/null || \
  cp "$tok"/tokenizer* "$assets/tokenizer/"
du -sh "$assets"/*
