#!/usr/bin/env bash
# Capacity: `waybill bench place` and `waybill bench lifecycle` on one node and on the cluster
# stack, in one invocation, with CPU per order (and per lifecycle) per process, and what 1k / 5k
# / 10k orders/s would need from that.
#
#   infra/scripts/capacity.sh [ORDERS] [CLIENTS] [LIFECYCLES]   (default 3000 16 1000)
#
# 1. single node: `bench place` (ORDERS) and `bench lifecycle --runs rounds` (LIFECYCLES, 20 %
#    returned) with the services in the bench process on the machine's Postgres, NATS, Redis and
#    ClickHouse, CPU split by thread;
# 2. cluster stack (infra/scripts/cluster.sh; stopped while the single-node benches run, since
#    their server rows count every postgres and nats-server process): started so delivered
#    orders close at once and confirmed ones route at once, as the single-node lifecycle runs
#    (WAYBILL_AUTO_CLOSE_DAYS=0, WAYBILL_FULFILLMENT_HOLD_SECS=0); then `bench place --external`
#    and `bench lifecycle --external` through the command APIs' balancer, while every process
#    of the stack is metered from /proc (each role instance, the balancers, the sandboxes,
#    every engine node, Postgres).
# Writes bench-results/capacity-single.json, capacity-cluster.json,
# capacity-lifecycle-single.json, capacity-lifecycle-cluster.json (the benches' own reports)
# and capacity.json (per-process CPU per order and per lifecycle on the stack, cores per role
# at 1k/5k/10k orders/s = CPU ms per order × rate, and cluster ÷ single node), and prints the
# tables. WAYBILL_BIN: a binary you built (default: the release build). The machine may be
# shared: CPU per unit is what to compare; throughput follows whatever else runs.
set -euo pipefail

say() { printf '[capacity] %s\n' "$*" >&2; }
die() { printf '[capacity] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
orders=${1:-3000}
clients=${2:-16}
lifecycles=${3:-1000}
out=bench-results
mkdir -p "$out"

if [ -z "${WAYBILL_BIN:-}" ]; then
  infra/scripts/ensure-toolchain.sh >&2
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  say "building the release binary"
  cargo build --release -p waybill >&2
  export WAYBILL_BIN=$root/target/release/waybill
fi
bin=$WAYBILL_BIN
# The build the binary came from, for the report: a path under target/debug is a debug build;
# say WAYBILL_BUILD=debug for a debug binary copied elsewhere.
build=${WAYBILL_BUILD:-$(case "$bin" in */debug/*) echo debug ;; *) echo release ;; esac)}

infra/scripts/ensure-services.sh >&2
infra/scripts/ensure-databases.sh >&2
infra/scripts/ensure-clickhouse.sh >&2

dir=${WAYBILL_CLUSTER_DIR:-$root/.waybill/cluster}
# The single-node benches count every postgres and nats-server process of the machine: a
# cluster stack left running (even idle) would be counted in them. Stop it first.
if [ -d "$dir" ]; then
  say "stopping the cluster stack while the single-node benches run"
  WAYBILL_CLUSTER_DIR=$dir infra/scripts/cluster.sh stop >&2
fi

say "[1/4] single node: bench place, $orders orders, $clients clients ($build build)"
"$bin" bench place --orders "$orders" --clients "$clients" --no-baseline --out "$out/capacity-single.json" >&2
say "[2/4] single node: bench lifecycle, $lifecycles orders, $clients clients"
"$bin" bench lifecycle --orders "$lifecycles" --clients "$clients" --runs rounds --no-baseline \
  --out "$out/capacity-lifecycle-single.json" >&2

say "cluster stack: starting it with auto-close and the fulfillment hold at 0"
settings=$(WAYBILL_CLUSTER_DIR=$dir WAYBILL_AUTO_CLOSE_DAYS=0 WAYBILL_FULFILLMENT_HOLD_SECS=0 \
  infra/scripts/cluster.sh start --no-demo)
setting() { sed -n "s/^$1=//p" <<<"$settings"; }
command_url=$(setting COMMAND_URL)
query_url=$(setting QUERY_URL)

# Every process of the stack: name and pid file.
pidfiles() {
  local f
  for f in "$dir"/roles/*.pid; do echo "$(basename "$f" .pid) $f"; done
  for f in "$dir"/nats/n*.pid; do echo "nats-$(basename "$f" .pid) $f"; done
  for f in "$dir"/redis/n*/redis.pid; do echo "redis-$(basename "$(dirname "$f")") $f"; done
  for f in "$dir"/clickhouse/r*/ch.pid; do echo "clickhouse-$(basename "$(dirname "$f")") $f"; done
  echo "zookeeper $dir/clickhouse/zookeeper/pid"
  echo "osmem $dir/osmem.pid"
}
# name ticks (utime + stime + reaped children) for each process, and Postgres summed.
snapshot() {
  local name file pid
  while read -r name file; do
    pid=$(cat "$file" 2>/dev/null) || continue
    [ -r "/proc/$pid/stat" ] || continue
    awk -v n="$name" '{ sub(/^.*\) /, ""); print n, $12 + $13 + $14 + $15 }' "/proc/$pid/stat"
  done < <(pidfiles)
  local total=0 ticks
  for pid in $(pgrep -x postgres); do
    ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
    total=$((total + ticks))
  done
  echo "postgres $total"
  echo "machine $(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)"
}

set -a
# shellcheck disable=SC1091
. "$dir/secrets.env"
set +a
external() {
  WAYBILL_COMMAND_ADDR=${command_url#http://} WAYBILL_QUERY_ADDR=${query_url#http://} \
    NATS_URL=$(setting NATS_URL) REDIS_URL=$(setting REDIS_URL) DATABASE_URL=$(setting DATABASE_URL) \
    "$bin" bench "$@" >&2
}
# One metered window: NAME, then the bench's arguments. Writes $out/capacity-window-NAME.txt.
metered() {
  local name=$1 started before
  shift
  before=$(snapshot)
  started=$(date +%s.%N)
  external "$@"
  { echo "$before" | sed 's/^/before /'; snapshot | sed 's/^/after /'
    echo "wall $started $(date +%s.%N)"; } >"$out/capacity-window-$name.txt"
}

say "[3/4] cluster stack: bench place --external through $command_url, $orders orders, $clients clients"
metered place place --external --orders "$orders" --clients "$clients" --no-baseline \
  --out "$out/capacity-cluster.json"
say "[4/4] cluster stack: bench lifecycle --external, $lifecycles orders, $clients clients"
metered lifecycle lifecycle --external --orders "$lifecycles" --clients "$clients" \
  --sandbox-url "$(setting LOGISTICS_SANDBOX_URL)" --metrics-url "$(setting METRICS_URLS)" \
  --out "$out/capacity-lifecycle-cluster.json"

python3 - "$out" "$build" <<'PYEOF'
import json, sys
out, build = sys.argv[1], sys.argv[2]

def window(name):
    before, after, wall = {}, {}, 0.0
    for line in open(f"{out}/capacity-window-{name}.txt"):
        parts = line.split()
        if parts[0] == "wall":
            wall = float(parts[2]) - float(parts[1])
        elif len(parts) == 3:
            (before if parts[0] == "before" else after)[parts[1]] = int(parts[2])
    return before, after, wall

def role(name):
    for prefix in ("nats", "redis", "clickhouse"):
        if name.startswith(prefix + "-"):
            return prefix
    return name.rsplit("-", 1)[0] if name.split("-")[-1].isdigit() else name

def metered(name, units):
    """Per-process and per-role CPU ms per unit over one metered window of the stack."""
    before, after, wall = window(name)
    rows = []
    for proc in sorted(after):
        if proc == "machine" or proc not in before:
            continue
        ms = (after[proc] - before[proc]) * 10.0
        rows.append({"process": proc, "cpu_ms": ms, "ms_per_unit": ms / max(units, 1), "cores": ms / 1000.0 / wall})
    roles = {}
    for r in rows:
        roles[role(r["process"])] = roles.get(role(r["process"]), 0.0) + r["ms_per_unit"]
    machine = (after["machine"] - before["machine"]) * 10.0 / max(units, 1)
    return {"wall_s": wall, "processes": rows, "roles": roles, "machine_ms_per_unit": machine}

# Waybill's own processes on the stack (not the sandboxes, not the engines).
WAYBILL = {"commands", "relay", "projector", "query", "checkout", "fulfillment", "balancer-command", "balancer-query"}
PLACEMENT = {"commands", "relay", "projector", "query", "balancer-command", "balancer-query"}

def single_row(report, name):
    return sum(p["ms_per_unit"] for p in report["cpu"]["processes"] if p["process"] == name)

single = json.load(open(f"{out}/capacity-single.json"))
cluster = json.load(open(f"{out}/capacity-cluster.json"))
life_single = json.load(open(f"{out}/capacity-lifecycle-single.json"))["runs"][0]
life_cluster = json.load(open(f"{out}/capacity-lifecycle-cluster.json"))["runs"][0]

orders = cluster["accepted"]
place = metered("place", orders)
closed = life_cluster["closed"]
life = metered("lifecycle", closed)

rates = [1000, 5000, 10000]
capacity = [{"role": k, "ms_per_order": v, "cores": {str(r): v * r / 1000.0 for r in rates}}
            for k, v in sorted(place["roles"].items(), key=lambda kv: -kv[1])]
life_capacity = [{"role": k, "ms_per_lifecycle": v, "cores": {str(r): v * r / 1000.0 for r in rates}}
                 for k, v in sorted(life["roles"].items(), key=lambda kv: -kv[1])]
placement = {"single_node_services": single_row(single, "waybill services"),
             "cluster_placement_roles": sum(v for k, v in place["roles"].items() if k in PLACEMENT)}
lifecycle = {"single_node_services": single_row(life_single, "waybill services"),
             "cluster_waybill_roles": sum(v for k, v in life["roles"].items() if k in WAYBILL),
             "single_node_machine": life_single["cpu"]["machine_ms_per_unit"],
             "cluster_machine": life["machine_ms_per_unit"]}
ratio = lambda a, b: a / b if b else None
report = {
    "build": build,
    "note": "shared 2-core machine; CPU per unit is the figure to compare, throughput follows the other load",
    "place": {
        "orders": orders,
        "single_node": {"orders_per_sec": single.get("orders_per_sec"), "cpu": single["cpu"]},
        "cluster": {"orders_per_sec": cluster.get("orders_per_sec"), **place, "capacity": capacity},
        "placement_ms_per_order": placement,
        "cluster_over_single": ratio(placement["cluster_placement_roles"], placement["single_node_services"]),
    },
    "lifecycle": {
        "single_node": {"closed": life_single["closed"], "lifecycles_per_sec": life_single["lifecycles_per_sec"],
                        "tracking_lag_ms": life_single["tracking_lag_ms"], "cpu": life_single["cpu"]},
        "cluster": {"closed": closed, "accepted": life_cluster["accepted"],
                    "lifecycles_per_sec": life_cluster["lifecycles_per_sec"],
                    "tracking_lag_ms": life_cluster["tracking_lag_ms"], **life, "capacity": life_capacity},
        "ms_per_lifecycle": lifecycle,
        "waybill_cluster_over_single": ratio(lifecycle["cluster_waybill_roles"], lifecycle["single_node_services"]),
        "machine_cluster_over_single": ratio(lifecycle["cluster_machine"], lifecycle["single_node_machine"]),
    },
}
json.dump(report, open(f"{out}/capacity.json", "w"), indent=2)

def table(title, m, unit):
    print(f"\n{title}: CPU per {unit} per process")
    print(f"{'process':22} {'cpu ms':>10} {'ms/' + unit:>13} {'cores':>6}")
    for r in m["processes"]:
        print(f"{r['process']:22} {r['cpu_ms']:10.0f} {r['ms_per_unit']:13.3f} {r['cores']:6.2f}")
    print(f"{'machine (all cores)':22} {'':>10} {m['machine_ms_per_unit']:13.3f}")

def needs(rows, key):
    print(f"{'role':20} {key:>9} " + " ".join(f"{str(r)+'/s':>8}" for r in rates))
    for c in rows:
        print(f"{c['role']:20} {c[key]:9.3f} " + " ".join(f"{c['cores'][str(r)]:8.1f}" for r in rates))

table(f"cluster stack, bench place, {orders} orders in {place['wall_s']:.1f} s ({build} build)", place, "order")
print("\nwhat the rates would need, placement (cores per role = ms per order x orders/s / 1000)")
needs(capacity, "ms_per_order")
table(f"cluster stack, bench lifecycle, {closed} closed in {life['wall_s']:.1f} s", life, "lifecycle")
print("\nwhat the rates would need, whole lifecycles (cores per role = ms per lifecycle x lifecycles/s / 1000)")
needs(life_capacity, "ms_per_lifecycle")
print(f"\nplacement path (command API, relay, projectors, query API): single node {placement['single_node_services']:.3f} ms/order,"
      f" cluster stack {placement['cluster_placement_roles']:.3f} ms/order (balancers included)")
print(f"whole lifecycle, Waybill's processes: single node {lifecycle['single_node_services']:.3f} ms,"
      f" cluster stack {lifecycle['cluster_waybill_roles']:.3f} ms; whole machine {lifecycle['single_node_machine']:.3f}"
      f" against {lifecycle['cluster_machine']:.3f} ms per lifecycle")
PYEOF
say "wrote $out/capacity.json and the four benches' reports; the cluster stack keeps running with auto-close at 0 (infra/scripts/cluster.sh stop-roles, then start, brings back its defaults; stop ends it)"
