#!/usr/bin/env bash
# Waybill's cluster stack on one machine: every engine as a real cluster and every role twice,
# on loopback, then the demo against it.
#
#   cluster.sh start [--no-demo]   start whatever is not running (idempotent: what runs is left
#                                  alone, a killed process or node is started again), then run
#                                  `waybill demo` through the load balancers (unless --no-demo)
#   cluster.sh status              what runs, where, and the engines' cluster state
#   cluster.sh stop                stop the roles, the balancers, osmem and the engines
#
# What it starts (ports from WAYBILL_CLUSTER_PORT_BASE, default 15520 = B):
#   NATS 2.15 JetStream, 3 nodes, streams R3  clients B..B+2, routes B+10..12, monitoring B+20..22
#   Redis Cluster, 3 masters + 3 replicas     B+3..B+8 (cluster bus 10000 above)
#   osmem-server (OpenSearch API, in memory)  B+13
#   payment sandbox, logistics sandbox         B+14, B+15 (state kept in files: they survive kill -9)
#   load balancers (`waybill balance`)         command APIs B+16, query APIs B+17
#   ZooKeeper + 2 ClickHouse replicas          ZooKeeper B+30, replica N http B+27+4N … https B+30+4N
#   command API ×2, query API ×2               B+40, B+41 / B+42, B+43
#   each process's metrics listener            B+44 … B+57
#   checkout ×2, fulfillment ×2, relay ×2, projector ×2 (every view; partitions shared by lease)
#   Postgres: the machine's (DATABASE_URL, default database waybill_cluster)
#
# Settings (environment): WAYBILL_CLUSTER_DIR (default .waybill/cluster: data, logs, pid files,
# generated secrets), WAYBILL_CLUSTER_PORT_BASE, WAYBILL_BIN (a built waybill binary; default:
# build the release binary). Any other Waybill variable set in the environment (DATABASE_URL,
# WAYBILL_NATS_STREAM, WAYBILL_REDIS_PREFIX, WAYBILL_CLICKHOUSE_DATABASE, …) reaches every
# process; the cluster addresses, ports and shared secrets are set here.
set -euo pipefail

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scripts=$root/infra/scripts
dir=${WAYBILL_CLUSTER_DIR:-$root/.waybill/cluster}
base=${WAYBILL_CLUSTER_PORT_BASE:-15520}
[[ $base =~ ^[0-9]+$ ]] && ((base >= 1024 && base <= 55000)) || die "WAYBILL_CLUSTER_PORT_BASE must be a port number (1024-55000)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
roles_dir=$dir/roles

# ---------------------------------------------------------------- the layout
nats_port() { echo $((base + $1 - 1)); }           # node 1..3
nats_monitor() { echo $((base + 20 + $1 - 1)); }
redis_base=$((base + 3))
osmem_port=$((base + 13))
payment_port=$((base + 14))
logistics_port=$((base + 15))
balancer_command=$((base + 16))
balancer_query=$((base + 17))
clickhouse_base=$((base + 29))
# The instances: name, role, the port of its API (or -), its metrics port.
instances() {
  cat <<EOF
commands-1 commands $((base + 40)) $((base + 44))
commands-2 commands $((base + 41)) $((base + 45))
query-1 query $((base + 42)) $((base + 46))
query-2 query $((base + 43)) $((base + 47))
checkout-1 checkout - $((base + 48))
checkout-2 checkout - $((base + 49))
fulfillment-1 fulfillment - $((base + 50))
fulfillment-2 fulfillment - $((base + 51))
relay-1 relay - $((base + 52))
relay-2 relay - $((base + 53))
projector-1 projector - $((base + 54))
projector-2 projector - $((base + 55))
EOF
}
sandbox_metrics_payment=$((base + 56))
sandbox_metrics_logistics=$((base + 57))

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
probe() { "$scripts/http-probe.sh" "127.0.0.1:$1" "${2:-/health}"; }

# ---------------------------------------------------------------- the binary
binary() {
  if [ -n "${WAYBILL_BIN:-}" ]; then
    [ -x "$WAYBILL_BIN" ] || die "WAYBILL_BIN=$WAYBILL_BIN is not an executable"
    bin=$WAYBILL_BIN
    return
  fi
  "$scripts/ensure-toolchain.sh" >&2
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  say "building the release binary (cargo build --release -p waybill; the first build takes a few minutes)"
  (cd "$root" && cargo build --release -p waybill >&2)
  bin=$root/target/release/waybill
}

# ---------------------------------------------------------------- shared settings
# One set of secrets for every process (made once): separately started processes must agree on
# them, and `waybill config check` refuses a multi-process role that would generate its own.
secrets() {
  local file=$dir/secrets.env
  if [ ! -s "$file" ]; then
    local r
    r() { openssl rand -hex 24; }
    (
      umask 077
      cat >"$file" <<EOF
WAYBILL_API_KEYS=$(r):cluster-admin:admin,$(r):cluster-service:service,$(r):cluster-agent:agent,$(r):cluster-finance:finance
WAYBILL_TRACKING_SECRET=$(r)
WAYBILL_JWT_SECRET=$(r)
WAYBILL_PAYMENT_API_KEY=$(r)
WAYBILL_PAYMENT_WEBHOOK_SECRET=$(r)
WAYBILL_LOGISTICS_WEBHOOK_SECRET=$(r)
WAYBILL_WEBHOOK_SEALING_KEY=$(openssl rand -hex 32)
WAYBILL_PII_MASTER_KEY=$(openssl rand -hex 32)
EOF
    )
    say "made the stack's secrets ($file, mode 600)"
  fi
  # A stack made before the webhook sealing key existed gets one (the rest stays).
  if ! grep -q '^WAYBILL_WEBHOOK_SEALING_KEY=' "$file"; then
    (umask 077; echo "WAYBILL_WEBHOOK_SEALING_KEY=$(openssl rand -hex 32)" >>"$file")
  fi
  # ... and a master key of personal data: the one its processes generated into $dir before
  # `serve` required it to be set, so the data keys they wrapped still open.
  if ! grep -q '^WAYBILL_PII_MASTER_KEY=' "$file"; then
    local generated
    generated=$(cat "$dir/pii-master-key" 2>/dev/null || openssl rand -hex 32)
    (umask 077; echo "WAYBILL_PII_MASTER_KEY=$generated" >>"$file")
  fi
  # Values set in the environment win over the file.
  local name value
  while IFS='=' read -r name value; do
    [ -n "${!name:-}" ] || export "$name=$value"
  done <"$file"
}

engines_env() {
  local nats="" n
  for n in 1 2 3; do nats+="${nats:+,}nats://127.0.0.1:$(nats_port $n)"; done
  export NATS_URL=$nats
  export WAYBILL_NATS_REPLICAS=${WAYBILL_NATS_REPLICAS:-3}
  export REDIS_URL=$redis_url
  # A view write is acknowledged only once a replica has it: a master killed right after loses
  # nothing its replica takes over.
  export WAYBILL_REDIS_WAIT_REPLICAS=${WAYBILL_REDIS_WAIT_REPLICAS:-1}
  # WAIT cannot promise that every failover keeps every confirmed write (Redis replicates
  # asynchronously): the views audit themselves against the log more often here, so one that
  # lost a write converges within seconds.
  export WAYBILL_PROJECTOR_AUDIT_SECONDS=${WAYBILL_PROJECTOR_AUDIT_SECONDS:-5}
  export WAYBILL_PROJECTOR_AUDIT_SETTLE_SECONDS=${WAYBILL_PROJECTOR_AUDIT_SETTLE_SECONDS:-10}
  export ELASTICSEARCH_URL=http://127.0.0.1:$osmem_port
  export WAYBILL_PROJECTOR_PARTITIONED=true
  export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/waybill_cluster}
  # Twelve processes share one Postgres (100 connections by default): a few each is plenty
  # for this stack and leaves room for everything else on the machine.
  export WAYBILL_DB_MAX_CONNECTIONS=${WAYBILL_DB_MAX_CONNECTIONS:-6}
  export WAYBILL_PAYMENT_SANDBOX_ADDR=127.0.0.1:$payment_port
  export WAYBILL_PAYMENT_GATEWAY_URL=http://127.0.0.1:$payment_port
  export WAYBILL_LOGISTICS_SANDBOX_ADDR=127.0.0.1:$logistics_port
  export WAYBILL_WMS_URL=http://127.0.0.1:$logistics_port
  export WAYBILL_CARRIER_URL=http://127.0.0.1:$logistics_port
  # Partners' webhooks, console actions and customers' links go through the balancers.
  export WAYBILL_PAYMENT_WEBHOOK_URL=http://127.0.0.1:$balancer_command/v1/webhooks/payments
  export WAYBILL_LOGISTICS_WEBHOOK_BASE=http://127.0.0.1:$balancer_command
  export WAYBILL_COMMAND_API_URL=http://127.0.0.1:$balancer_command
  export WAYBILL_PUBLIC_TRACKING_URL=http://127.0.0.1:$balancer_query
  export WAYBILL_SANDBOX_STATE_DIR=${WAYBILL_SANDBOX_STATE_DIR:-$dir/sandbox-state}
  export WAYBILL_NOTIFICATIONS_DIR=${WAYBILL_NOTIFICATIONS_DIR:-$dir/notifications}
  export WAYBILL_SECRETS_DIR=$dir
  # As demo.sh: a short fulfillment hold (the demo edits an order in it), every review raised
  # on the desk at once, the operations page sampled every 2 s.
  export WAYBILL_FULFILLMENT_HOLD_SECS=${WAYBILL_FULFILLMENT_HOLD_SECS:-4}
  export WAYBILL_DESK_REVIEW_WARN_SECS=${WAYBILL_DESK_REVIEW_WARN_SECS:-172800}
  export WAYBILL_OPS_SAMPLE_MS=${WAYBILL_OPS_SAMPLE_MS:-2000}
}

# ---------------------------------------------------------------- engines
start_engines() {
  "$scripts/ensure-services.sh" >&2
  "$scripts/ensure-nats-cluster.sh" start "$dir/nats" "$base" >/dev/null
  redis_url=$("$scripts/ensure-redis-cluster.sh" start "$dir/redis" "$redis_base" | sed -n 's/^REDIS_URL=//p')
  [ -n "$redis_url" ] || die "ensure-redis-cluster.sh printed no REDIS_URL"
  local line clickhouse
  clickhouse=$("$scripts/ensure-clickhouse-cluster.sh" start "$dir/clickhouse" "$clickhouse_base") ||
    die "the ClickHouse cluster did not start (logs under $dir/clickhouse)"
  while IFS= read -r line; do
    case $line in
      WAYBILL_CLICKHOUSE_URL=* | WAYBILL_CLICKHOUSE_CLUSTER=* | WAYBILL_CLICKHOUSE_USER=* | WAYBILL_CLICKHOUSE_PASSWORD=*)
        export "${line?}" ;;
    esac
  done <<<"$clickhouse"
  [ -n "${WAYBILL_CLICKHOUSE_URL:-}" ] || die "ensure-clickhouse-cluster.sh printed no WAYBILL_CLICKHOUSE_URL"
  start_osmem
}

osmem_restarted=""
start_osmem() {
  local pidfile=$dir/osmem.pid
  if running "$pidfile" && probe "$osmem_port" /; then
    say "osmem-server already running (pid $(cat "$pidfile"), port $osmem_port)"
    return
  fi
  "$scripts/ensure-search.sh" >&2
  local venv=${WAYBILL_OSMEM_VENV:-$root/.waybill/venv-osmem}
  nohup "$venv/bin/osmem-server" -addr "127.0.0.1:$osmem_port" -no-stdin-watch \
    </dev/null >>"$dir/osmem.log" 2>&1 &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 30))
  until probe "$osmem_port" /; do
    running "$pidfile" || { tail -n 20 "$dir/osmem.log" >&2; die "osmem-server exited (log: $dir/osmem.log)"; }
    ((SECONDS < deadline)) || die "osmem-server did not answer within 30 s (log: $dir/osmem.log)"
    sleep 0.2
  done
  osmem_restarted=yes
  say "osmem-server is up (port $osmem_port; documents in memory only)"
}

# ---------------------------------------------------------------- Waybill processes
# start_process NAME PROBE_PORT PROBE_PATH -- ENV... -- ARGS...: starts `waybill ARGS` with ENV
# unless NAME runs; PROBE_PORT/PATH is where it answers once ready.
start_process() {
  local name=$1 port=$2 path=$3
  shift 4
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local pidfile=$roles_dir/$name.pid log=$roles_dir/$name.log
  mkdir -p "$roles_dir"
  if running "$pidfile" && grep -q waybill "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
    return 1
  fi
  env "${envs[@]}" setsid nohup "$bin" "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
  started+=("$name:$port:$path")
  return 0
}

# Waits until every process started by this run answers its probe.
wait_started() {
  local entry name port path deadline=$((SECONDS + ${WAYBILL_CLUSTER_READY_SECS:-120}))
  for entry in "${started[@]}"; do
    IFS=: read -r name port path <<<"$entry"
    until probe "$port" "$path"; do
      if ! running "$roles_dir/$name.pid"; then
        tail -n 30 "$roles_dir/$name.log" >&2
        die "$name exited (log: $roles_dir/$name.log)"
      fi
      ((SECONDS < deadline)) || { tail -n 30 "$roles_dir/$name.log" >&2; die "$name did not answer on $port within the deadline"; }
      sleep 0.2
    done
    say "  $name is up (pid $(cat "$roles_dir/$name.pid"))"
  done
  started=()
}

check_config() {
  local role=$1
  shift
  env "$@" "$bin" config check --role "$role" >"$roles_dir/config-check-$role.log" 2>&1 ||
    { cat "$roles_dir/config-check-$role.log" >&2; die "waybill config check --role $role failed"; }
}

start_roles() {
  started=()
  mkdir -p "$roles_dir"
  say "migrating (Postgres, ClickHouse cluster)"
  "$bin" migrate >"$roles_dir/migrate.log" 2>&1 || { tail -n 30 "$roles_dir/migrate.log" >&2; die "waybill migrate failed"; }

  local name role port metrics checked=" "
  start_process payment-sandbox "$payment_port" /health -- \
    "WAYBILL_METRICS_ADDR=127.0.0.1:$sandbox_metrics_payment" -- serve payment-sandbox &&
    say "starting payment-sandbox" || true
  start_process logistics-sandbox "$logistics_port" /health -- \
    "WAYBILL_METRICS_ADDR=127.0.0.1:$sandbox_metrics_logistics" -- serve logistics-sandbox &&
    say "starting logistics-sandbox" || true
  while read -r name role port metrics; do
    local addrs=("WAYBILL_METRICS_ADDR=127.0.0.1:$metrics")
    # Roles without an API listener get a port of their own anyway, never a default another
    # instance could hold.
    case $role in
      commands) addrs+=("WAYBILL_COMMAND_ADDR=127.0.0.1:$port") ;;
      query) addrs+=("WAYBILL_QUERY_ADDR=127.0.0.1:$port") ;;
    esac
    # Each role's settings are checked (without connecting) before its first instance starts.
    if ! running "$roles_dir/$name.pid" && [[ $checked != *" $role "* ]]; then
      check_config "$role" "${addrs[@]}"
      checked+="$role "
    fi
    local probe_port=$metrics
    [ "$port" = - ] || probe_port=$port
    start_process "$name" "$probe_port" /health -- "${addrs[@]}" -- serve "$role" &&
      say "starting $name" || true
  done < <(instances)
  local commands queries
  commands=$(instances | awk '$2 == "commands" { printf "%s127.0.0.1:%s", sep, $3; sep="," }')
  queries=$(instances | awk '$2 == "query" { printf "%s127.0.0.1:%s", sep, $3; sep="," }')
  start_process balancer-command "$balancer_command" /health -- -- \
    balance --listen "127.0.0.1:$balancer_command" --upstream "$commands" &&
    say "starting the command APIs' balancer" || true
  start_process balancer-query "$balancer_query" /health -- -- \
    balance --listen "127.0.0.1:$balancer_query" --upstream "$queries" &&
    say "starting the query APIs' balancer" || true
  if [ ${#started[@]} -eq 0 ]; then
    say "every Waybill process was already running"
  else
    say "waiting for ${#started[@]} processes to answer"
    wait_started
  fi
  if [ -n "$osmem_restarted" ] && [ -f "$dir/started-once" ]; then
    # osmem keeps documents in memory: a restarted one is empty while the views' consumers
    # are past those events. Rebuild the search view from the event log.
    say "osmem-server was restarted: rebuilding the search view from the event log"
    "$bin" rebuild search >>"$roles_dir/rebuild-search.log" 2>&1 || say "rebuild search failed (log: $roles_dir/rebuild-search.log)"
  fi
  touch "$dir/started-once"
}

run_demo() {
  say "running: waybill demo (through the balancers: command APIs on $balancer_command, query APIs on $balancer_query)"
  WAYBILL_COMMAND_ADDR=127.0.0.1:$balancer_command WAYBILL_QUERY_ADDR=127.0.0.1:$balancer_query \
    WAYBILL_METRICS_ADDR=127.0.0.1:$((base + 58)) \
    "$bin" demo ${WAYBILL_CLUSTER_DEMO_ARGS:-}
}

# ---------------------------------------------------------------- status and stop
status() {
  local name role port metrics state
  printf '%-20s %-8s %-8s %s\n' process pid state port
  for name in payment-sandbox logistics-sandbox balancer-command balancer-query; do
    state=stopped
    running "$roles_dir/$name.pid" && state=running
    case $name in
      payment-sandbox) port=$payment_port ;;
      logistics-sandbox) port=$logistics_port ;;
      balancer-command) port=$balancer_command ;;
      balancer-query) port=$balancer_query ;;
    esac
    printf '%-20s %-8s %-8s %s\n' "$name" "$(cat "$roles_dir/$name.pid" 2>/dev/null || echo -)" "$state" "$port"
  done
  while read -r name role port metrics; do
    state=stopped
    running "$roles_dir/$name.pid" && state=running
    printf '%-20s %-8s %-8s %s\n' "$name" "$(cat "$roles_dir/$name.pid" 2>/dev/null || echo -)" "$state" "${port/-/metrics $metrics}"
  done < <(instances)
  local n
  for n in 1 2 3; do
    printf 'nats n%s (port %s): %s\n' "$n" "$(nats_port $n)" \
      "$(curl -fsS --max-time 1 "http://127.0.0.1:$(nats_monitor $n)/jsz" 2>/dev/null |
        python3 -c 'import json,sys; m=json.load(sys.stdin).get("meta_cluster",{}); print("meta cluster of", m.get("cluster_size"), "leader", m.get("leader"))' 2>/dev/null || echo down)"
  done
  printf 'redis cluster (ports %s-%s): %s\n' "$redis_base" $((redis_base + 5)) \
    "$(redis-cli -h 127.0.0.1 -p "$redis_base" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state' || echo 'first node down')"
  for n in 1 2; do
    local http=$((clickhouse_base + 4 * n - 2))
    printf 'clickhouse replica r%s (http %s): %s\n' "$n" "$http" "$(probe "$http" /ping && echo up || echo down)"
  done
  printf 'osmem-server (port %s): %s\n' "$osmem_port" "$(probe "$osmem_port" / && echo up || echo down)"
}

# Stops the processes of the given pid files together: TERM to all, then KILL to whatever
# still runs after 15 s.
stop_pidfiles() {
  local pidfile pids=() names=()
  for pidfile in "$@"; do
    if running "$pidfile"; then
      pids+=("$(cat "$pidfile")")
      names+=("$(basename "$pidfile" .pid)")
      kill -TERM "${pids[-1]}" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  local deadline=$((SECONDS + 15)) pid alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -gt 0 ] || break
    if ((SECONDS >= deadline)); then
      say "still running after 15 s, killing: ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  say "stopped ${names[*]}"
}

# Waybill's role processes and the balancers (not the sandboxes, not the engines).
stop_roles() {
  local name role port metrics files=()
  for name in balancer-command balancer-query; do files+=("$roles_dir/$name.pid"); done
  while read -r name role port metrics; do files+=("$roles_dir/$name.pid"); done < <(instances)
  stop_pidfiles "${files[@]}"
}

stop() {
  stop_roles
  stop_pidfiles "$roles_dir/payment-sandbox.pid" "$roles_dir/logistics-sandbox.pid" "$dir/osmem.pid"
  "$scripts/ensure-clickhouse-cluster.sh" stop "$dir/clickhouse" || true
  "$scripts/ensure-redis-cluster.sh" stop "$dir/redis" || true
  "$scripts/ensure-nats-cluster.sh" stop "$dir/nats" || true
  say "stopped (data stays in $dir)"
}

# ---------------------------------------------------------------- main
case "${1:-}" in
  start)
    demo=yes
    [ "${2:-}" = --no-demo ] && demo=""
    binary
    secrets
    say "[1/3] engines: NATS ×3, Redis Cluster 3+3, ZooKeeper + ClickHouse ×2, osmem, Postgres"
    start_engines
    engines_env
    say "[2/3] Waybill: every role twice, sandboxes, balancers (logs in $roles_dir)"
    start_roles
    cat <<INFO >&2
[cluster] the stack is up:
  command APIs  http://127.0.0.1:$balancer_command  (balanced over $(instances | awk '$2 == "commands" { printf "%s ", $3 }'))
  query APIs    http://127.0.0.1:$balancer_query  (balanced over $(instances | awk '$2 == "query" { printf "%s ", $3 }'))
  admin key     in $dir/secrets.env (WAYBILL_API_KEYS, the first entry)
  status        infra/scripts/cluster.sh status
  stop          infra/scripts/cluster.sh stop
INFO
    # For scripts and tests: where everything is, one NAME=value a line on stdout.
    cat <<EOF
COMMAND_URL=http://127.0.0.1:$balancer_command
QUERY_URL=http://127.0.0.1:$balancer_query
PAYMENT_SANDBOX_URL=$WAYBILL_PAYMENT_GATEWAY_URL
LOGISTICS_SANDBOX_URL=$WAYBILL_WMS_URL
NATS_URL=$NATS_URL
NATS_MONITOR_PORTS=$(nats_monitor 1),$(nats_monitor 2),$(nats_monitor 3)
REDIS_URL=$REDIS_URL
REDIS_BASE_PORT=$redis_base
CLICKHOUSE_BASE_PORT=$clickhouse_base
WAYBILL_CLICKHOUSE_URL=$WAYBILL_CLICKHOUSE_URL
WAYBILL_CLICKHOUSE_CLUSTER=$WAYBILL_CLICKHOUSE_CLUSTER
WAYBILL_CLICKHOUSE_USER=$WAYBILL_CLICKHOUSE_USER
WAYBILL_CLICKHOUSE_PASSWORD=$WAYBILL_CLICKHOUSE_PASSWORD
ELASTICSEARCH_URL=$ELASTICSEARCH_URL
DATABASE_URL=$DATABASE_URL
METRICS_URLS=$(instances | awk '{ printf "%shttp://127.0.0.1:%s/metrics", sep, $4; sep="," }')
EOF
    if [ -n "$demo" ]; then
      say "[3/3] the demo on the cluster stack"
      run_demo >&2
    fi
    ;;
  status) redis_url=""; status ;;
  stop) stop ;;
  stop-roles) stop_roles; say "Waybill's processes stopped (sandboxes and engines still run)" ;;
  *) die "usage: $0 start [--no-demo] | status | stop | stop-roles" ;;
esac
