#!/usr/bin/env bash
# Snakemake runs this once in the new environment (--sdm conda): install cbtflow into it.
exec bash "${CBTFLOW_ROOT:-$PWD}/envs/install-cbtflow.sh"
