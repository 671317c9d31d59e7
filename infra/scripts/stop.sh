#!/usr/bin/env bash
# Stops the `waybill serve all` that infra/scripts/demo.sh started (pid in .waybill/serve.pid).
# Leaves Postgres, NATS and Redis running. Safe to run when nothing is running.
set -euo pipefail

quiet=${1:-}
say() { [ "$quiet" = --quiet ] || printf '[stop] %s\n' "$*"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pid_file=$root/.waybill/serve.pid

if [ ! -f "$pid_file" ]; then
  say "nothing to stop (no $pid_file)"
  exit 0
fi
pid=$(cat "$pid_file")
if kill -0 "$pid" 2>/dev/null && grep -q waybill "/proc/$pid/cmdline" 2>/dev/null; then
  printf '[stop] stopping waybill (pid %s)\n' "$pid"
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf '[stop] still running after 10s; sending SIGKILL\n'
    kill -KILL "$pid"
  fi
else
  say "waybill (pid $pid) is not running"
fi
rm -f "$pid_file"
