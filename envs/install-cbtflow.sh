#!/usr/bin/env bash
# Installs this project into the active conda environment without touching its pinned
# dependencies. Every envs/<name>.post-deploy.sh runs it: Snakemake runs a post-deploy
# script once, inside the new environment, from the directory it runs in (the project
# root). Set CBTFLOW_ROOT when Snakemake runs from elsewhere (--directory).
set -euo pipefail
root="${CBTFLOW_ROOT:-$PWD}"
if [ ! -f "$root/pyproject.toml" ]; then
  echo "post-deploy: $root has no pyproject.toml; set CBTFLOW_ROOT to the cbtflow checkout" >&2
  exit 1
fi
python -m pip install --no-deps -e "$root"
