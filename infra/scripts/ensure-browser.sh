#!/usr/bin/env bash
# Makes sure Debian's headless-capable Chromium is installed for the tracking-page browser test
# (tests/tests/e2e/tracking_page_browser.rs drives it over the DevTools protocol). Installs the
# `chromium` package with apt-get when no chromium binary is on PATH (fresh Debian 12, as root);
# does nothing when one is there, so running it again is harmless. Nothing is downloaded at
# test time. Prints the binary it found.
set -euo pipefail

say() { printf '[ensure-browser] %s\n' "$*"; }
die() { printf '[ensure-browser] ERROR: %s\n' "$*" >&2; exit 1; }

find_chromium() {
  local candidate
  for candidate in "${WAYBILL_CHROMIUM:-}" chromium chromium-browser; do
    [ -n "$candidate" ] && command -v "$candidate" 2>/dev/null && return 0
  done
  return 1
}

if bin=$(find_chromium); then
  say "chromium present: $bin"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "chromium is missing and installing it needs root (apt-get install chromium)"
command -v apt-get >/dev/null || die "apt-get not found: install chromium yourself"
say "apt-get install -y chromium"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
bin=$(find_chromium) || die "chromium still not on PATH after installing it"
say "chromium installed: $bin"
