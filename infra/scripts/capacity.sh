#!/usr/bin/env bash
# Capacity: `waybill bench place` on one node and on the cluster stack, in one invocation, with
# CPU per order per process, and what 1k / 5k / 10k orders/s would need from that.
#
#   infra/scripts/capacity.sh [ORDERS] [CLIENTS]      (default 3000 orders, 16 clients)
#
# 1. single node: `bench place` with the command API, relay, projectors and query API in the
#    bench process on the machine's Postgres, NATS, Redis (and ClickHouse), CPU split by thread;
# 2. cluster stack (infra/scripts/cluster.sh start --no-demo): `bench place --external` through
#    the command APIs' balancer, while every process of the stack is metered from /proc (each
#    role instance, the balancers, the sandboxes, every engine node, Postgres).
# Writes bench-results/capacity-single.json, capacity-cluster.json (the benches' own reports)
# and capacity.json (per-process CPU per order on the stack, and cores per role at 1k/5k/10k
# orders/s = CPU ms per order × rate), and prints both tables. WAYBILL_BIN: a binary you built
# (default: the release build). The machine may be shared: CPU per order is what to compare;
# throughput follows whatever else runs.
set -euo pipefail

say() { printf '[capacity] %s\n' "$*" >&2; }
die() { printf '[capacity] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
orders=${1:-3000}
clients=${2:-16}
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
build=$(case "$bin" in */release/*) echo release ;; *) echo debug ;; esac)

infra/scripts/ensure-services.sh >&2
infra/scripts/ensure-databases.sh >&2
infra/scripts/ensure-clickhouse.sh >&2

say "[1/2] single node: bench place, $orders orders, $clients clients ($build build)"
"$bin" bench place --orders "$orders" --clients "$clients" --no-baseline --out "$out/capacity-single.json" >&2

say "[2/2] cluster stack: starting it (infra/scripts/cluster.sh start --no-demo)"
dir=${WAYBILL_CLUSTER_DIR:-$root/.waybill/cluster}
settings=$(WAYBILL_CLUSTER_DIR=$dir infra/scripts/cluster.sh start --no-demo)
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

say "cluster stack: bench place --external through $command_url, $orders orders, $clients clients"
before=$(snapshot)
started=$(date +%s.%N)
set -a
# shellcheck disable=SC1091
. "$dir/secrets.env"
set +a
WAYBILL_COMMAND_ADDR=${command_url#http://} WAYBILL_QUERY_ADDR=${query_url#http://} \
  NATS_URL=$(setting NATS_URL) REDIS_URL=$(setting REDIS_URL) DATABASE_URL=$(setting DATABASE_URL) \
  "$bin" bench place --external --orders "$orders" --clients "$clients" --no-baseline \
  --out "$out/capacity-cluster.json" >&2
after=$(snapshot)
ended=$(date +%s.%N)

python3 - "$out" "$build" "$started" "$ended" <<PYEOF
import json, sys
out, build, started, ended = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
def parse(text):
    return {l.split()[0]: int(l.split()[1]) for l in text.strip().splitlines() if len(l.split()) == 2}
before, after = parse("""$before"""), parse("""$after""")
single = json.load(open(f"{out}/capacity-single.json"))
cluster = json.load(open(f"{out}/capacity-cluster.json"))
orders = cluster["accepted"]
wall = ended - started
rows = []
for name in sorted(after):
    if name == "machine" or name not in before:
        continue
    ms = (after[name] - before[name]) * 10.0
    rows.append({"process": name, "cpu_ms": ms, "ms_per_order": ms / max(orders, 1), "cores": ms / 1000.0 / wall})
def role(name):
    base = name.rsplit("-", 1)[0] if name.split("-")[-1].isdigit() else name
    for prefix in ("nats", "redis", "clickhouse"):
        if name.startswith(prefix + "-"):
            return prefix
    return base
roles = {}
for r in rows:
    roles.setdefault(role(r["process"]), 0.0)
    roles[role(r["process"])] += r["ms_per_order"]
machine = (after["machine"] - before["machine"]) * 10.0 / max(orders, 1)
rates = [1000, 5000, 10000]
capacity = [{"role": k, "ms_per_order": v, "cores": {str(rate): v * rate / 1000.0 for rate in rates}} for k, v in sorted(roles.items(), key=lambda kv: -kv[1])]
placement = {"commands", "relay", "projector", "query", "balancer-command", "balancer-query"}
def single_services(report):
    return sum(p["ms_per_unit"] for p in report["cpu"]["processes"] if p["process"] == "waybill services")
report = {
    "build": build,
    "orders": orders,
    "note": "shared 2-core machine; CPU per order is the figure to compare, throughput follows the other load",
    "single_node": {"orders_per_sec": single.get("throughput_per_sec") or single.get("orders_per_sec"), "cpu": single["cpu"]},
    "cluster": {"orders_per_sec": cluster.get("throughput_per_sec") or cluster.get("orders_per_sec"), "wall_s": wall, "processes": rows,
                "machine_ms_per_order": machine, "roles": capacity},
    "placement_ms_per_order": {"single_node_services": single_services(single),
                               "cluster_placement_roles": sum(v for k, v in roles.items() if k in placement)},
}
json.dump(report, open(f"{out}/capacity.json", "w"), indent=2)
print(f"\ncluster stack, {orders} orders in {wall:.1f} s ({build} build): CPU per order per process")
print(f"{'process':22} {'cpu ms':>10} {'ms/order':>9} {'cores':>6}")
for r in rows:
    print(f"{r['process']:22} {r['cpu_ms']:10.0f} {r['ms_per_order']:9.3f} {r['cores']:6.2f}")
print(f"{'machine (all cores)':22} {'':>10} {machine:9.3f}")
print(f"\nwhat the rates would need (cores per role = ms per order x orders/s / 1000)")
print(f"{'role':20} {'ms/order':>9} " + " ".join(f"{str(r)+'/s':>8}" for r in rates))
for c in capacity:
    print(f"{c['role']:20} {c['ms_per_order']:9.3f} " + " ".join(f"{c['cores'][str(r)]:8.1f}" for r in rates))
p = report["placement_ms_per_order"]
print(f"\nplacement path (command API, relay, projectors, query API): single node {p['single_node_services']:.3f} ms/order,"
      f" cluster stack {p['cluster_placement_roles']:.3f} ms/order (balancers included)")
PYEOF
say "wrote $out/capacity.json, capacity-single.json, capacity-cluster.json; the cluster stack keeps running (WAYBILL_CLUSTER_DIR=$dir infra/scripts/cluster.sh stop)"
