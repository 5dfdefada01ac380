#!/usr/bin/env bash
# Stop the SLURM daemons that tests/cluster/slurm_up.sh started (and only those), and
# remove the slurm.conf it wrote.
set -uo pipefail
STATE=/var/run/cbtflow-slurm
for daemon in slurmd slurmctld munged; do
  pidfile="$STATE/$daemon.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null && echo "slurm_down: stopped $daemon ($pid)"
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"   # did not stop within 10 s
  rm -f "$pidfile"
done
# Remove the config too: with SLURM's tools installed and a config naming a controller that
# is gone, every `snakemake` start waits ~10 s (the SLURM plugin asks `scontrol show config`).
if [ -f "$STATE/wrote-slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf "$STATE/wrote-slurm.conf"
  echo "slurm_down: removed /etc/slurm/slurm.conf"
fi
