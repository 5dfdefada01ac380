#!/usr/bin/env bash
# Start a one-node SLURM on this machine for the `slurm` tests (and for trying the
# profiles/slurm profile by hand). Needs root and Debian's package registry.
#
#   tests/cluster/slurm_up.sh     # installs slurm-wlm + munge if missing, writes
#                                 # /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd,
#                                 # waits until the node is idle
#   tests/cluster/slurm_down.sh   # stops what this script started
#
# No systemd here, so the daemons are started by hand. The settings that make a one-node
# SLURM work in a container: proctrack/linuxproc (no cgroups), task/none, no accounting
# (so the Snakemake plugin must use `--slurm-status-command squeue`), and slurm.conf at
# /etc/slurm/slurm.conf (the jobstep plugin drops SLURM_CONF from the environment).
set -euo pipefail

STATE=/var/run/cbtflow-slurm       # pids of the daemons this script started
mkdir -p "$STATE"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm_up: installing slurm-wlm and munge from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

node=$(hostname -s)
# What slurmd detects on this machine; RealMemory a little under it so the node is never
# drained for having less memory than configured.
read -r cpus mem < <(slurmd -C | awk '/^NodeName/ {
  for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["CPUs"], v["RealMemory"] }')
mem=$(( mem * 9 / 10 ))

MARK="# One-node SLURM for cbtflow's tests"
if [ -f /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
  echo "slurm_up: /etc/slurm/slurm.conf belongs to another SLURM setup; not touching it" >&2
  exit 1
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
touch "$STATE/wrote-slurm.conf"
cat > /etc/slurm/slurm.conf <<CONF
$MARK (written by tests/cluster/slurm_up.sh)
ClusterName=cbtflow-test
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# squeue must still see finished jobs when Snakemake asks (status via squeue, no sacct)
MinJobAge=600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${node} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
CONF

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! munge -n >/dev/null 2>&1; then   # no working munged yet
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- munged
  for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.2; done
  cp /run/munge/munged.pid "$STATE/munged.pid"
fi
if ! running /var/run/slurmctld.pid; then
  slurmctld
  sleep 1
  cp /var/run/slurmctld.pid "$STATE/slurmctld.pid"
fi
if ! running /var/run/slurmd.pid; then
  slurmd
  sleep 1
  cp /var/run/slurmd.pid "$STATE/slurmd.pid"
fi

for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) echo "slurm_up: node ${node} is ${state}"; exit 0 ;;
    *drain*|*down*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "slurm_up: node ${node} did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
