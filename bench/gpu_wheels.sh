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
# Versions of envs/cuda-train.yaml, for the GPU image's Python 3.12 on x86-64, --no-deps:
# torch, the CUDA libraries and what the image already holds (pyarrow, sentencepiece, protobuf,
# xxhash, fsspec, pandas, typer, rich ...) are never fetched.
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python -m pip download --quiet --dest "$assets/all" --no-deps "${platform[@]}" \
  unsloth==2026.10.9 unsloth_zoo==2026.10.9 bitsandbytes==0.50.2 trl==1.15.0 datasets==4.8.5 \
  cut_cross_entropy tyro docstring-parser typeguard msgspec hf_transfer "multiprocess<0.70.20" \
  "dill<0.4.2" torchao diffusers json5 nest-asyncio structlog pydantic pydantic-core \
  typing-inspection annotated-types
python - "$assets" "${BNB_CUDA:-130 132}" <<'PY'
import re, shutil, sys, zipfile
from pathlib import Path
assets = Path(sys.argv[1])
# bitsandbytes ships one native library per CUDA and ROCm version (123 MiB unpacked); keep
# the CPU one and those for the image's CUDA (13.x), so that every wheel fits one call.
keep = {f"libbitsandbytes_cuda{v}.so" for v in sys.argv[2].split()} | {"libbitsandbytes_cpu.so"}
for wheel in (assets / "all").glob("bitsandbytes-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        dropped = {n for n in src.namelist() if re.search(r"/libbitsandbytes_\w+\.so$", n) and n.rsplit("/", 1)[1] not in keep}
        for item in src.infolist():
            if item.filename in dropped:
                continue
            data = src.read(item.filename)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(l for l in data.splitlines(True) if l.split(b",")[0].decode() not in dropped)
            dst.writestr(item, data)
    slim.replace(wheel)
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
# The chat template travels too: transformers 5 keeps it in chat_template.jinja.
cp "$tok"/tokenizer* "$tok"/special_tokens_map.json "$tok"/chat_template.jinja "$assets/tokenizer/" 2>/dev/null || true
for needed in tokenizer.json chat_template.jinja; do
  [ -f "$assets/tokenizer/$needed" ] || { echo "$tok has no $needed" >&2; exit 1; }
done
du -sh "$assets"/*
