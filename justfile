# Everyday commands. Each recipe is a thin wrapper: the scripts in infra/scripts work without just.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Start Postgres/NATS/Redis if needed, build, run `waybill serve all` and the payment and logistics sandboxes in
# the background, and push demo orders through checkout.
up:
    infra/scripts/demo.sh

# Same as `up`.
demo: up

# Stop the services `up` started (Postgres, NATS and Redis keep running).
down:
    infra/scripts/stop.sh

# The whole suite, as CI runs it: fmt check, clippy -D warnings, every test incl. end-to-end.
test:
    infra/scripts/test.sh

# Only the end-to-end tests (real binary against real services).
e2e:
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-browser.sh
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run -p waybill-e2e; else cargo test -p waybill-e2e; fi

# Placement benchmark with relay and projector running (release build); writes bench-results/place.json.
bench orders="20000" clients="32":
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run --release -p waybill -- bench place --orders {{orders}} --clients {{clients}}

# Flash sale on one hot SKU: the batching reservation writer vs one transaction per reservation;
# writes bench-results/flash-sale.json.
bench-flash-sale orders="5000" stock="1000":
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run --release -p waybill -- bench flash-sale --orders {{orders}} --stock {{stock}}

# Checkout benchmark: card orders through the whole flow to confirmation and capture, beside
# placement alone (release build); writes bench-results/checkout.json and .svg.
bench-checkout orders="10000" clients="32":
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run --release -p waybill -- bench checkout --orders {{orders}} --clients {{clients}}

# Tracking read path at a fixed rate (open loop): JSON endpoint and page beside /health; writes
# bench-results/tracking.json and .svg.
bench-tracking rate="2000" seconds="10":
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run --release -p waybill -- bench tracking --rate {{rate}} --seconds {{seconds}}

# Open live tracking pages (SSE) on one query instance: idle CPU with and without them, update
# latency from the append; writes bench-results/live-pages.json and .svg.
bench-live-pages pages="10000":
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run --release -p waybill -- bench live-pages --pages {{pages}}

# Search benchmark: 1M synthetic orders into a scratch Tantivy index, then filtered free-text
# queries against an exact-id baseline (release build); writes bench-results/search.json and .svg.
bench-search orders="1000000":
    cargo run --release -p waybill -- bench search --orders {{orders}}

# Format everything.
fmt:
    cargo fmt --all

# Clippy over the workspace with warnings denied.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Create the database if missing and apply the migrations (DATABASE_URL, default the local `waybill`).
migrate:
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
    cargo run -p waybill -- migrate

# Rebuild a read model from the event log (blue/green).
rebuild view="tracking":
    cargo run --release -p waybill -- rebuild {{view}}

# Make sure services, databases and toolchain are in place.
setup:
    infra/scripts/ensure-toolchain.sh
    infra/scripts/ensure-services.sh
    infra/scripts/ensure-databases.sh
