#!/usr/bin/env bash
# README command 1: start everything and place real orders.
# Ensures the toolchain, services (Postgres, NATS JetStream, Redis) and databases, builds the
# release binary, starts `waybill serve all` and our simulated payment gateway (`waybill serve
# payment-sandbox`, webhooks to the command API) in the background (replacing ones this script
# started before), runs `waybill demo` against them, and prints where to look. The services keep
# running; stop them with infra/scripts/stop.sh. `demo.sh --cluster` runs the demo on the cluster
# stack instead (infra/scripts/cluster.sh).
set -euo pipefail

say() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
scripts=infra/scripts

# `demo.sh --cluster`: the same demo on the cluster stack (every engine clustered, every role
# twice): infra/scripts/cluster.sh.
if [ "${1:-}" = --cluster ]; then
  exec "$scripts/cluster.sh" start
fi

"$scripts/ensure-toolchain.sh"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
"$scripts/ensure-services.sh"
"$scripts/ensure-databases.sh"
"$scripts/ensure-clickhouse.sh"
"$scripts/ensure-smtp.sh"   # aiosmtpd: the local SMTP server customer emails are delivered to

say "building the release binary (cargo build --release -p waybill; the first build takes a few minutes)"
cargo build --release -p waybill
bin=$root/target/release/waybill

command_addr=${WAYBILL_COMMAND_ADDR:-127.0.0.1:8080}
query_addr=${WAYBILL_QUERY_ADDR:-127.0.0.1:8081}
sandbox_addr=${WAYBILL_PAYMENT_SANDBOX_ADDR:-127.0.0.1:8090}
state=.waybill
pid_file=$state/serve.pid
log_file=$state/serve.log
sandbox_pid_file=$state/payment-sandbox.pid
sandbox_log_file=$state/payment-sandbox.log
mkdir -p "$state"

"$scripts/stop.sh" --quiet
for addr in "$command_addr" "$query_addr" "$sandbox_addr"; do
  if timeout 1 bash -c "exec 3<>/dev/tcp/${addr%:*}/${addr##*:}" 2>/dev/null; then
    die "something else listens on $addr; stop it or set WAYBILL_COMMAND_ADDR / WAYBILL_QUERY_ADDR / WAYBILL_PAYMENT_SANDBOX_ADDR"
  fi
done

# The sandboxes keep their state in files there (a restarted sandbox still knows its captures
# and parcels: write-side/PAYMENT-SANDBOX.md, State).
export WAYBILL_SANDBOX_STATE_DIR=${WAYBILL_SANDBOX_STATE_DIR:-$PWD/$state/sandbox-state}

# The sandbox resolves the same generated payment key and webhook secret from $state as
# `serve all` does, and posts its webhooks to the command API.
say "starting: waybill serve payment-sandbox (simulated gateway; log: $sandbox_log_file)"
WAYBILL_PAYMENT_SANDBOX_ADDR=$sandbox_addr \
  WAYBILL_PAYMENT_WEBHOOK_URL=${WAYBILL_PAYMENT_WEBHOOK_URL:-http://$command_addr/v1/webhooks/payments} \
  setsid nohup "$bin" serve payment-sandbox >>"$sandbox_log_file" 2>&1 </dev/null &
echo $! >"$sandbox_pid_file"

# Customer notifications go out for real: email over SMTP to a local aiosmtpd that keeps every
# message in a Maildir, text messages to our simulated SMS provider (`serve sms-sandbox`).
smtp_addr=${WAYBILL_DEMO_SMTP_ADDR:-127.0.0.1:8025}
sms_addr=${WAYBILL_SMS_SANDBOX_ADDR:-127.0.0.1:8093}
maildir=$PWD/$state/maildir
say "starting: aiosmtpd on $smtp_addr (Maildir $maildir) and waybill serve sms-sandbox on $sms_addr (simulated)"
setsid nohup "${WAYBILL_SMTP_VENV:-$PWD/$state/venv-aiosmtpd}/bin/aiosmtpd" -n -l "$smtp_addr" -c aiosmtpd.handlers.Mailbox "$maildir" \
  >>"$state/smtp.log" 2>&1 </dev/null & echo $! >"$state/smtp.pid"
WAYBILL_SMS_SANDBOX_ADDR=$sms_addr setsid nohup "$bin" serve sms-sandbox >>"$state/sms-sandbox.log" 2>&1 </dev/null & echo $! >"$state/sms-sandbox.pid"
export WAYBILL_SMTP_HOST=${WAYBILL_SMTP_HOST:-${smtp_addr%:*}} WAYBILL_SMTP_PORT=${WAYBILL_SMTP_PORT:-${smtp_addr##*:}}
export WAYBILL_SMTP_SECURITY=${WAYBILL_SMTP_SECURITY:-plain} WAYBILL_SMS_URL=${WAYBILL_SMS_URL:-http://$sms_addr}

# Our simulated WMS + carrier (write-side/FULFILLMENT.md); webhooks go to the command API.
WAYBILL_LOGISTICS_WEBHOOK_BASE=http://$command_addr setsid nohup "$bin" serve logistics-sandbox >>"$state/logistics-sandbox.log" 2>&1 </dev/null & echo $! >"$state/logistics-sandbox.pid"
say "starting: waybill serve all (log: $log_file)"
# A short fulfillment hold (the edit window before routing) so the demo can edit an order.
# The desk raises every review at once (its warning window is the whole review time) and the
# operations page samples every 2 s, so both have something to show after a short run.
# Webhook deliveries give an event up after 3 attempts (default 12, about 25 minutes), so the
# demo's refused event becomes a dead letter within seconds and can be redelivered.
# One process on a developer machine: without WAYBILL_PII_MASTER_KEY it may seal personal data
# under a master key generated into .waybill/pii-master-key (a served role refuses otherwise).
WAYBILL_ALLOW_GENERATED_PII_KEY=${WAYBILL_ALLOW_GENERATED_PII_KEY:-true} \
WAYBILL_WEBHOOK_MAX_ATTEMPTS=${WAYBILL_WEBHOOK_MAX_ATTEMPTS:-3} \
WAYBILL_DESK_REVIEW_WARN_SECS=${WAYBILL_DESK_REVIEW_WARN_SECS:-172800} \
WAYBILL_OPS_SAMPLE_MS=${WAYBILL_OPS_SAMPLE_MS:-2000} \
WAYBILL_PAYMENT_GATEWAY_URL=${WAYBILL_PAYMENT_GATEWAY_URL:-http://$sandbox_addr} \
WAYBILL_FULFILLMENT_HOLD_SECS=${WAYBILL_FULFILLMENT_HOLD_SECS:-4} \
  setsid nohup "$bin" serve all >>"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"

deadline=$((SECONDS + 60))
for probe in "$command_addr:$pid_file:$log_file" "$query_addr:$pid_file:$log_file" \
  "$sandbox_addr:$sandbox_pid_file:$sandbox_log_file"; do
  IFS=: read -r host port pids log <<<"$probe"
  until "$scripts/http-probe.sh" "$host:$port" /health; do
    kill -0 "$(cat "$pids")" 2>/dev/null || { tail -n 30 "$log" >&2; die "$(basename "$pids" .pid) exited (log: $log)"; }
    ((SECONDS < deadline)) || { tail -n 30 "$log" >&2; die "no answer on $host:$port/health after 60s"; }
    sleep 0.2
  done
done
say "services are up (serve all pid $(cat "$pid_file"), payment sandbox pid $(cat "$sandbox_pid_file"))"

say "running: waybill demo"
export WAYBILL_PAYMENT_GATEWAY_URL=${WAYBILL_PAYMENT_GATEWAY_URL:-http://$sandbox_addr}
status=0
"$bin" demo || status=$?

emails=$(find "$maildir/new" "$maildir/cur" -type f 2>/dev/null | wc -l)
say "the SMTP server received $emails emails (Maildir $maildir); the newest:"
find "$maildir/new" -type f -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -3 | while read -r _ file; do
  printf '  %s | %s | %s\n' "$(grep -m1 '^To:' "$file")" "$(grep -m1 '^Content-Language:' "$file")" "$(grep -m1 '^Message-ID:' "$file")"
done
# Routing what-if: today's recorded routing decisions replayed with a candidate config.
say "running: waybill routing simulate (today's decisions with write-side/fulfillment-routing.candidate.json: carbon weight x10, wh-west disabled)"
today=$(date -u +%F)
"$bin" routing simulate --config write-side/fulfillment-routing.candidate.json \
  --from "$today" --to "$today" --out "$state/routing-simulation" || status=$?

cat <<INFO

[demo] Waybill is running (pid $(cat "$pid_file")). Where to look:
  command API   http://$command_addr   (POST /v1/orders, /openapi.json, /live, /ready)
  query API     http://$query_addr   (GET /v1/orders/{id}/tracking, /openapi.json, /live, /ready)
  metrics       http://${WAYBILL_METRICS_ADDR:-127.0.0.1:9100}/metrics   (own listener; also /live, /ready)
  payment       http://$sandbox_addr   (simulated gateway, pid $(cat "$sandbox_pid_file"), log $sandbox_log_file)
  API key       $state/dev-api-key   (use as: Authorization: Bearer \$(cat $state/dev-api-key))
  log           $log_file
  events        psql -h 127.0.0.1 -U postgres waybill -c 'SELECT stream_id, stream_version, event_type FROM events'
  views         redis-cli --scan --pattern '${WAYBILL_REDIS_PREFIX:-waybill}:tracking:*'
  console       http://$query_addr/console   (agents and admins: search, order pages, actions)
  desk          http://$query_addr/console/desk   (agents and admins: stuck and at-risk orders, resolutions that act)
  finance       http://$query_addr/finance   (finance and admins: money per day, reconciliation, CSV)
  operations    http://$query_addr/ops   (admins: per-view lag and stalls, throughput, dead letters, backlogs)
  sign in       paste the dev admin key from $state/dev-api-key (or a key of WAYBILL_API_KEYS with the role)
  emails        $maildir   (aiosmtpd on $smtp_addr; every customer email as received over SMTP)
  texts         http://$sms_addr/v1/messages   (SMS sandbox, simulated; Bearer \$(cat $state/sms-api-key))
  routing sim   $state/routing-simulation/index.html   (also POST /v1/routing/simulations, admin)
  event feed    http://$command_addr/v1/events?after=0   (admins: the pull feed; webhooks: /v1/subscriptions)
Stop it with: infra/scripts/stop.sh
INFO
exit "$status"
