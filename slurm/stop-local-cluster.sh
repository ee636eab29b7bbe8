#!/usr/bin/env bash
# Stop the one-node SLURM cluster that slurm/start-local-cluster.sh started, by the PIDs in its pid
# files (slurmd, slurmctld, munged). Leaves packages and /etc/slurm/slurm.conf in place.
#   sudo slurm/stop-local-cluster.sh [--purge]   (--purge also deletes its state, spool and logs)
set -uo pipefail
DIR="${LIT_DIFFUSION_SLURM_DIR:-/tmp/lit-diffusion-slurm}"
for name in slurmd slurmctld munged; do
  pidfile="$DIR/$name.pid"
  [[ -f "$pidfile" ]] || continue
  pid=$(cat "$pidfile")
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; [[ -d /proc/$pid ]] && grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null && break; sleep 0.1; done
  fi
  rm -f "$pidfile"
  echo "stop-local-cluster: stopped $name ($pid)"
done
[[ "${1:-}" == "--purge" ]] && rm -rf "$DIR" && echo "stop-local-cluster: removed $DIR"
exit 0
