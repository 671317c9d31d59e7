#!/usr/bin/env bash
# Stops what infra/scripts/demo.sh started: `waybill serve all` (pid in .waybill/serve.pid) and
# the payment sandbox, `waybill serve payment-sandbox` (pid in .waybill/payment-sandbox.pid).
# Leaves Postgres, NATS and Redis running. Safe to run when nothing is running.
set -euo pipefail

quiet=${1:-}
say() { [ "$quiet" = --quiet ] || printf '[stop] %s\n' "$*"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# stop_one <name> <pid file>: TERM, wait up to 10s, then KILL; only a waybill process.
stop_one() {
  local name=$1 pid_file=$2 pid
  if [ ! -f "$pid_file" ]; then
    say "$name: nothing to stop (no $pid_file)"
    return 0
  fi
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null && grep -q waybill "/proc/$pid/cmdline" 2>/dev/null; then
    printf '[stop] stopping %s (pid %s)\n' "$name" "$pid"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      printf '[stop] %s still running after 10s; sending SIGKILL\n' "$name"
      kill -KILL "$pid"
    fi
  else
    say "$name (pid $pid) is not running"
  fi
  rm -f "$pid_file"
}

stop_one "waybill serve all" "$root/.waybill/serve.pid"
stop_one "payment sandbox" "$root/.waybill/payment-sandbox.pid"
stop_one "logistics sandbox" "$root/.waybill/logistics-sandbox.pid"
stop_one "SMS sandbox" "$root/.waybill/sms-sandbox.pid"
stop_one "SMTP server (aiosmtpd)" "$root/.waybill/smtp.pid"
