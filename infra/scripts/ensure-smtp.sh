#!/usr/bin/env bash
# Makes sure aiosmtpd (PyPI aiosmtpd==1.4.6, an asyncio SMTP server) is installed in a virtualenv at
# $WAYBILL_SMTP_VENV (default <repo>/.waybill/venv-aiosmtpd). The notifications tests and the demo
# start it as the local SMTP server the email adapter (lettre) delivers to; each received message is
# written to a Maildir, so a test reads exactly what was sent. Idempotent: an existing venv with the
# right version is left alone. Installs python3-venv with apt-get first when it is missing.
set -euo pipefail

say() { printf '[ensure-smtp] %s\n' "$*"; }
die() { printf '[ensure-smtp] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${WAYBILL_SMTP_VENV:-$root/.waybill/venv-aiosmtpd}
version=1.4.6

# shellcheck source=lib/pinned-venv.sh
. "$root/infra/scripts/lib/pinned-venv.sh"

if pinned_venv_present "$venv" aiosmtpd "$version" aiosmtpd; then
  say "aiosmtpd $version present in $venv"
  exit 0
fi

pinned_venv_create "$venv" aiosmtpd "$version"
[ -x "$venv/bin/aiosmtpd" ] || die "aiosmtpd was installed but $venv/bin/aiosmtpd is missing"
say "aiosmtpd $version installed in $venv"
