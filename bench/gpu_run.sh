#!/usr/bin/env bash
# On the GPU machine, in the repository root, with bench/gpu-assets carried there: install the
# carried wheels without an index, then run bench/gpu.py and keep its table and the workers'
# logs under $OUT (the device tool's output). If the wheels had to be split over several
# folders, carry one per call, back to back while the machine is warm.
#
#   bash bench/gpu_run.sh install     # once per carried wheels-N folder
#   bash bench/gpu_run.sh bench       # after every folder is installed
#   bash bench/gpu_run.sh all         # both, when every folder travels in one call
set -euo pipefail
cd "$(dirname "$0")/.."
# The project from its checkout (an editable install would need the build backend, offline).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
install() {
  for folder in bench/gpu-assets/wheels-*; do
    "$python" -m pip install --no-index --no-deps --no-compile --quiet "$folder"/*.whl
  done
  "$python" -m pip list 2>/dev/null | grep -iE "^(torch|transformers|peft|accelerate|trl|datasets|unsloth|unsloth.zoo|bitsandbytes) " || true
}
bench() {
  "$python" -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)"
  status=0
  timeout "${BENCH_TIMEOUT:-3000}" "$python" bench/gpu.py --work /tmp/cbtflow-gpu --shapes "${SHAPES:-small,8b}" | tee "${OUT:-.}/gpu.txt" || status=$?
  tail -n 60 /tmp/cbtflow-gpu/logs/*.log >"${OUT:-.}/gpu-worker-logs.txt" 2>/dev/null || true
  return "$status"
}
case "${1:-bench}" in
  install) install ;;
  bench) bench ;;
  all) install && bench ;;
esac
