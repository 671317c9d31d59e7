#!/usr/bin/env bash
# Makes sure schemathesis (the OpenAPI contract fuzzer, PyPI schemathesis==4.32.5) is installed in a
# virtualenv at $WAYBILL_SCHEMATHESIS_VENV (default <repo>/.waybill/venv-schemathesis).
# Idempotent: an existing venv with the right version is left alone. Installs python3-venv with
# apt-get first when `python3 -m venv` is missing (fresh Debian 12, run as root). The contract test
# (tests/tests/e2e/contract.rs) runs $WAYBILL_SCHEMATHESIS_VENV/bin/st against both live APIs.
set -euo pipefail

say() { printf '[ensure-schemathesis] %s\n' "$*"; }
die() { printf '[ensure-schemathesis] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${WAYBILL_SCHEMATHESIS_VENV:-$root/.waybill/venv-schemathesis}
version=4.32.5

if [ -x "$venv/bin/st" ] &&
  "$venv/bin/python" -m pip show schemathesis 2>/dev/null | grep -qx "Version: $version"; then
  say "schemathesis $version present in $venv"
  exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "python3-venv is missing and installing it needs root"
  say "apt-get install -y python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

say "creating $venv with schemathesis==$version"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
[ -x "$venv/bin/st" ] || die "schemathesis was installed but $venv/bin/st is missing"
say "schemathesis $version installed in $venv"
