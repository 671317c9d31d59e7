#!/usr/bin/env bash
# README command 2 (and CI): the whole test suite.
# Ensures toolchain, services and databases, then: formatting, clippy with warnings denied, and
# every test of the workspace (unit, property, integration and the end-to-end tests that run the
# real binary), with cargo-nextest when installed. Dev profile only: nothing is built in release.
set -euo pipefail

say() { printf '\n[test] %s\n' "$*"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
started=$SECONDS

infra/scripts/ensure-toolchain.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
infra/scripts/ensure-services.sh
infra/scripts/ensure-databases.sh
infra/scripts/ensure-browser.sh   # headless Chromium for the tracking-page browser test
infra/scripts/ensure-clickhouse.sh
infra/scripts/ensure-search.sh     # osmem-server (OpenSearch API) for the search backend suite
infra/scripts/ensure-nats-cluster.sh  # nats-server 2.15 for the 3-node JetStream cluster test
infra/scripts/ensure-clickhouse-cluster.sh  # zookeeper + clickhouse-server for the replicated warehouse test
infra/scripts/ensure-schemathesis.sh  # the OpenAPI contract fuzzer the e2e contract test runs
infra/scripts/ensure-smtp.sh  # aiosmtpd, the local SMTP server the notifications test delivers email to

# Tests drop their databases; one that failed midway leaves its database behind. Remove those
# (names: waybill_<suite>_<hex>, nobody connected) so they do not pile up on a developer machine.
say "removing databases left by earlier failed test runs"
psql -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d postgres -Atc \
  "SELECT d.datname FROM pg_database d WHERE d.datname ~ '^waybill_[a-z0-9]+_[0-9a-f]{12,32}$'
     AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)" |
  while read -r db; do
    psql -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || continue
    echo "  dropped $db"
  done

say "cargo fmt --all --check"
cargo fmt --all --check

say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo build -p waybill (the binary the end-to-end tests start)"
cargo build -p waybill
export WAYBILL_BIN=$root/target/debug/waybill

if cargo nextest --version >/dev/null 2>&1; then
  say "cargo test --workspace --doc"
  cargo test --workspace --doc
  say "cargo nextest run --workspace"
  cargo nextest run --workspace --no-fail-fast
else
  say "cargo test --workspace"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  status=0
  cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
  awk '/^test result:/ { p += $4; f += $6; i += $8 }
       END { printf "\n[test] Summary: %d passed, %d failed, %d ignored\n", p, f, i }' \
    "${log}"
  [ "$status" = 0 ] || exit "$status"
fi

say "all checks passed in $((SECONDS - started))s"
