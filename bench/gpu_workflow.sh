#!/usr/bin/env bash
# Issue 34, prepared and not yet run (no GPU has been lent since it was written): the default
# workflow on a lent GPU, rule by rule, with `gpus_per_job: 1`.
#
# Here (with network to the package index):
#   bash bench/gpu_workflow.sh prepare   # bench/gpu-assets/: training wheels (gpu_wheels.sh), the
#                                        # workflow's own wheels, the embedded model's config and
#                                        # tokenizer; folders of at most 60 MiB, one per `carry`
# On the device, in the repository root, per carried folder while the machine is warm:
#   bash bench/gpu_workflow.sh install
# then once:
#   bash bench/gpu_workflow.sh run       # $OUT/gpu_workflow.txt: per rule the jobs, seconds and
#                                        # backend, and whether the report was built
#
# The embedded model's weights (a 98 MB GGUF inside a wheel) do not fit one call, so the run
# uses a seeded random model of the same shape with the real tokenizer (bench/RESULTS.md must
# say so next to the numbers): the timings and backends are real, the text is noise.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=bench/gpu-assets
python=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1

prepare() {
  bash bench/gpu_wheels.sh
  # The workflow's own dependencies (pyproject), never torch or CUDA, for the image's Python 3.12.
  python -m pip download --quiet --dest "$assets/workflow" --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    $(python - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.startswith(("torch", "transformers", "peft", "accelerate"))))
PY
)
  python - "$assets" <<'PY'
import shutil, sys
from pathlib import Path
assets = Path(sys.argv[1])
folder, size, index = None, 0, 0
for wheel in sorted((assets / "workflow").glob("*.whl")):
    if folder is None or size + wheel.stat().st_size > 60 * 2**20:
        index += 1
        folder, size = assets / f"wheels-workflow-{index}", 0
        folder.mkdir(exist_ok=True)
    shutil.copy(wheel, folder)
    size += wheel.stat().st_size
PY
  mkdir -p "$assets/smollm2-shape"
  cp .cbtflow-cache/test-models/smollm2-135m/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json} \
    "$assets/smollm2-shape/" 2>/dev/null || true
  du -sh "$assets"/*
}

install() {
  for folder in "$assets"/wheels-*; do
    "$python" -m pip install --no-index --no-deps --no-compile --quiet "$folder"/*.whl
  done
}

run() {
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  work=/tmp/cbtflow-gpu-workflow
  rm -rf "$work" && mkdir -p "$work"
  cp -r Snakefile config.yaml workflow scripts resources envs profiles "$work/"
  "$python" - "$assets/smollm2-shape" "$work/random-smollm2" <<'PY'
import shutil, sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM
source, target = sys.argv[1:]
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source), dtype=torch.bfloat16)
model.save_pretrained(target)
for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
    shutil.copy(f"{source}/{name}", target)
PY
  cd "$work"
  "$python" - <<'PY'
import yaml
config = yaml.safe_load(open("config.yaml"))
config["gpus_per_job"] = 1
config["bases"]["smollm2-135m"] = {"source": "random-smollm2"}  # a local directory: nothing to prepare
yaml.safe_dump(config, open("gpu.yaml", "w"), sort_keys=False)
PY
  status=0
  start=$(date +%s)
  timeout "${RUN_TIMEOUT:-540}" "$python" -m snakemake --configfile gpu.yaml --cores 8 --resources gpu=1 \
    >"${OUT:-.}/gpu_workflow.log" 2>&1 || status=$?
  wall=$(( $(date +%s) - start ))
  "$python" - "$wall" "$status" >"${OUT:-.}/gpu_workflow.txt" <<'PY'
import csv, re, sys
from collections import defaultdict
from pathlib import Path
wall, status = sys.argv[1:]
seconds, jobs, backends = defaultdict(float), defaultdict(int), defaultdict(set)
for tsv in Path("benchmarks").rglob("*.tsv"):
    rule = tsv.relative_to("benchmarks").parts[0]
    seconds[rule] += float(next(csv.DictReader(tsv.open(), delimiter="\t"))["s"])
    jobs[rule] += 1
for log in Path("logs").rglob("*.log"):
    rule, text = log.relative_to("logs").parts[0], log.read_text(errors="replace")
    backends[rule] |= set(re.findall(r"backend: (\S+)", text))
    backends[rule] |= {f"{p} on {d}" for p, d in re.findall(r"loading: loaded \S+(?: \+ \S+)? in (\w+) on (\w+)", text)}
print("| rule | jobs | job seconds | backend |")
print("|---|---|---|---|")
for rule in sorted(set(seconds) | set(backends)):
    print(f"| {rule} | {jobs[rule]} | {seconds[rule]:.1f} | {', '.join(sorted(backends[rule])) or '-'} |")
print(f"snakemake exit status {status}; report built: {Path('results/report/report.md').exists()}")
print(f"gpu_workflow_wall_seconds: {wall}")
PY
  cat "${OUT:-.}/gpu_workflow.txt"
  return "$status"
}

case "${1:-run}" in
  prepare) prepare ;;
  install) install ;;
  run) run ;;
esac
