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

# shellcheck source=lib/pinned-venv.sh
. "$root/infra/scripts/lib/pinned-venv.sh"

if pinned_venv_present "$venv" schemathesis "$version" st; then
  say "schemathesis $version present in $venv"
  exit 0
fi

pinned_venv_create "$venv" schemathesis "$version"
[ -x "$venv/bin/st" ] || die "schemathesis was installed but $venv/bin/st is missing"
say "schemathesis $version installed in $venv"
