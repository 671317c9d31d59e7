#!/usr/bin/env bash
# Makes sure osmem-server (an in-memory OpenSearch-API server for tests, PyPI osmem-server==0.1.6)
# is installed in a virtualenv at $WAYBILL_OSMEM_VENV (default <repo>/.waybill/venv-osmem).
# Idempotent: an existing venv with the right version is left alone. Installs python3-venv with
# apt-get first when `python3 -m venv` is missing (fresh Debian 12, run as root). Tests start their
# own osmem-server from $WAYBILL_OSMEM_VENV/bin/osmem-server on a port of their own.
set -euo pipefail

say() { printf '[ensure-search] %s\n' "$*"; }
die() { printf '[ensure-search] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${WAYBILL_OSMEM_VENV:-$root/.waybill/venv-osmem}
version=0.1.6

# shellcheck source=lib/pinned-venv.sh
. "$root/infra/scripts/lib/pinned-venv.sh"

if pinned_venv_present "$venv" osmem-server "$version" osmem-server; then
  say "osmem-server $version present in $venv"
  exit 0
fi

pinned_venv_create "$venv" osmem-server "$version"
# The wheel bundles a static server binary inside the package (no console script): link it.
bundled=$("$venv/bin/python" -c 'import osmem_server; print(osmem_server.resolve_binary())')
ln -sf "$bundled" "$venv/bin/osmem-server"
[ -x "$venv/bin/osmem-server" ] || die "osmem-server was installed but $venv/bin/osmem-server is missing"
say "osmem-server $version installed in $venv"
