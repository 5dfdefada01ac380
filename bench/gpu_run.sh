#!/usr/bin/env bash
# On the GPU machine, in the repository root, with bench/gpu-assets carried there (one
# wheels-N folder per call if they do not fit together): install the carried wheels without
# an index, then run bench/gpu.py and keep its table under $OUT (the device tool's output).
#
#   bash bench/gpu_run.sh install     # once per carried wheels-N folder
#   bash bench/gpu_run.sh bench       # after every folder is installed
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-bench}" in
  install)
    for folder in bench/gpu-assets/wheels-*; do
      python -m pip install --no-index --no-deps --quiet "$folder"/*.whl
    done
    python -m pip install --no-deps --quiet -e .
    ;;
  bench)
    python -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)"
    python bench/gpu.py --work /tmp/cbtflow-gpu --shapes "${SHAPES:-small,8b}" | tee "${OUT:-.}/gpu.txt"
    ;;
esac
