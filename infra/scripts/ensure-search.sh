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

if [ -x "$venv/bin/osmem-server" ] &&
  "$venv/bin/python" -m pip show osmem-server 2>/dev/null | grep -qx "Version: $version"; then
  say "osmem-server $version present in $venv"
  exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "python3-venv is missing and installing it needs root"
  say "apt-get install -y python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

say "creating $venv with osmem-server==$version"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "osmem-server==$version"
# The wheel bundles a static server binary inside the package (no console script): link it.
bundled=$("$venv/bin/python" -c 'import osmem_server; print(osmem_server.resolve_binary())')
ln -sf "$bundled" "$venv/bin/osmem-server"
[ -x "$venv/bin/osmem-server" ] || die "osmem-server was installed but $venv/bin/osmem-server is missing"
say "osmem-server $version installed in $venv"
