#!/usr/bin/env bash
# Makes sure the Rust toolchain (cargo with rustfmt and clippy, and a C linker) is there,
# installing it with rustup if cargo is missing (Debian's packaged cargo is too old for this
# workspace). Installs `just` with apt-get when the distribution packages it; everything works
# without it. Safe to run again.
set -euo pipefail

say() { printf '[ensure-toolchain] %s\n' "$*"; }
die() { printf '[ensure-toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

apt_install() {
  [ "$(id -u)" = 0 ] || die "installing $* needs root"
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

if ! command -v cc >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  apt_install build-essential pkg-config
fi

if command -v cargo >/dev/null; then
  say "cargo found: $(cargo --version)"
else
  command -v curl >/dev/null || apt_install curl ca-certificates
  say "installing Rust with rustup (stable, minimal profile + rustfmt, clippy)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --component rustfmt --component clippy
  export PATH="$HOME/.cargo/bin:$PATH"
  say "installed $(cargo --version); add \$HOME/.cargo/bin to your PATH"
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
      say "adding $component"
      rustup component add "$component"
    else
      die "cargo ${component/rustfmt/fmt} is missing and rustup is not available"
    fi
  fi
done
say "rustfmt and clippy present"

if command -v cargo-nextest >/dev/null; then
  say "cargo-nextest found (the test script uses it)"
fi

if command -v just >/dev/null; then
  say "just found: $(just --version)"
elif command -v apt-cache >/dev/null && apt-cache show just >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt_install just
else
  say "just is not packaged here; skipping it (every recipe is a script in infra/scripts)"
fi
