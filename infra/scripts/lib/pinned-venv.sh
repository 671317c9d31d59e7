# Sourced by the ensure-*.sh scripts that install a pinned PyPI package into a virtualenv.
# pinned_venv_present VENV PACKAGE VERSION EXECUTABLE: true when VENV/bin/EXECUTABLE exists and
#   the venv holds PACKAGE at exactly VERSION.
# pinned_venv_create VENV PACKAGE VERSION: (re)creates VENV with PACKAGE==VERSION, installing
#   python3-venv with apt-get first when `python3 -m venv` is missing (fresh Debian 12, as root).
# The caller defines say and die.

pinned_venv_present() {
  local venv=$1 package=$2 version=$3 executable=$4 shown
  [ -x "$venv/bin/$executable" ] || return 1
  # Read pip's answer whole first: `pip show | grep -q` under pipefail fails whenever grep
  # stops reading early and pip gets SIGPIPE, which made every run reinstall.
  shown=$("$venv/bin/python" -m pip show "$package" 2>/dev/null) || return 1
  grep -qx "Version: $version" <<<"$shown"
}

pinned_venv_create() {
  local venv=$1 package=$2 version=$3
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "python3-venv is missing and installing it needs root"
    say "apt-get install -y python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  say "creating $venv with $package==$version"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package==$version"
}
