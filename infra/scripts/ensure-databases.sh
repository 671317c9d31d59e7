#!/usr/bin/env bash
# Creates the databases `waybill` (demo/dev) and `waybill_test` if missing and makes
# SERIALIZABLE their default isolation level, as Waybill's tests and CockroachDB-readiness
# require. Safe to run again. Connection: PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres).
set -euo pipefail

say() { printf '[ensure-databases] %s\n' "$*"; }

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

sql() { psql -d postgres -v ON_ERROR_STOP=1 -tAc "$1"; }

for db in waybill waybill_test; do
  if [ "$(sql "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ]; then
    say "database $db exists"
  else
    say "creating database $db"
    sql "CREATE DATABASE $db" >/dev/null
  fi
  say "setting default_transaction_isolation = serializable on $db"
  sql "ALTER DATABASE $db SET default_transaction_isolation = 'serializable'" >/dev/null
done
say "databases ready (migrations are applied by 'waybill migrate' / 'waybill serve all')"
