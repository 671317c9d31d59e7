#!/usr/bin/env bash
# README command 1: start everything and place real orders.
# Ensures the toolchain, services (Postgres, NATS JetStream, Redis) and databases, builds the
# release binary, starts `waybill serve all` in the background (replacing one this script started
# before), runs `waybill demo` against it, and prints where to look. The services keep running;
# stop them with infra/scripts/stop.sh.
set -euo pipefail

say() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
scripts=infra/scripts

"$scripts/ensure-toolchain.sh"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
"$scripts/ensure-services.sh"
"$scripts/ensure-databases.sh"

say "building the release binary (cargo build --release -p waybill; the first build takes a few minutes)"
cargo build --release -p waybill
bin=$root/target/release/waybill

command_addr=${WAYBILL_COMMAND_ADDR:-127.0.0.1:8080}
query_addr=${WAYBILL_QUERY_ADDR:-127.0.0.1:8081}
state=.waybill
pid_file=$state/serve.pid
log_file=$state/serve.log
mkdir -p "$state"

"$scripts/stop.sh" --quiet
for addr in "$command_addr" "$query_addr"; do
  if timeout 1 bash -c "exec 3<>/dev/tcp/${addr%:*}/${addr##*:}" 2>/dev/null; then
    die "something else listens on $addr; stop it or set WAYBILL_COMMAND_ADDR / WAYBILL_QUERY_ADDR"
  fi
done

say "starting: waybill serve all (log: $log_file)"
setsid nohup "$bin" serve all >>"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"

deadline=$((SECONDS + 60))
for addr in "$command_addr" "$query_addr"; do
  until "$scripts/http-probe.sh" "$addr" /health; do
    kill -0 "$(cat "$pid_file")" 2>/dev/null || { tail -n 30 "$log_file" >&2; die "waybill serve all exited"; }
    ((SECONDS < deadline)) || { tail -n 30 "$log_file" >&2; die "no answer on $addr/health after 60s"; }
    sleep 0.2
  done
done
say "services are up (pid $(cat "$pid_file"))"

say "running: waybill demo"
"$bin" demo

cat <<INFO

[demo] Waybill is running (pid $(cat "$pid_file")). Where to look:
  command API   http://$command_addr   (POST /v1/orders, /openapi.json, /metrics)
  query API     http://$query_addr   (GET /v1/orders/{id}/tracking, /openapi.json, /metrics)
  API key       $state/dev-api-key   (use as: Authorization: Bearer \$(cat $state/dev-api-key))
  log           $log_file
  events        psql -h 127.0.0.1 -U postgres waybill -c 'SELECT stream_id, stream_version, event_type FROM events'
  views         redis-cli --scan --pattern '${WAYBILL_REDIS_PREFIX:-waybill}:tracking:*'
Stop it with: infra/scripts/stop.sh   (or: kill \$(cat $pid_file))
INFO
