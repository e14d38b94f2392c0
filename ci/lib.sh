# Shared helpers for ci/*.sh (sourced, not run).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT

log() { printf '==> %s\n' "$*"; }
ok() { printf 'ok    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*" >&2
    exit 1
}

# pip installs console scripts next to the interpreter; make sure they are on PATH even when
# no pyenv shim exists for them yet.
PY_SCRIPTS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$PY_SCRIPTS:$PATH"

pip_install() {
    log "pip install $*"
    # A PEP 668 ("externally managed") system Python refuses plain installs: retry past it.
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check "$@" ||
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
            --break-system-packages "$@"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
    hash -r
}

# ensure_command CMD PIP_PACKAGE: install the package when CMD is missing.
ensure_command() {
    command -v "$1" >/dev/null 2>&1 || pip_install "$2"
    command -v "$1" >/dev/null 2>&1 || fail "$1 is not on PATH after 'pip install $2'"
}

# ensure_module MODULE PIP_PACKAGE
ensure_module() {
    python3 -c "import $1" 2>/dev/null || pip_install "$2"
    python3 -c "import $1" || fail "python3 cannot import $1 after 'pip install $2'"
}

# ensure_apt CMD APT_PACKAGE: install the Debian package when CMD is missing (needs root).
ensure_apt() {
    command -v "$1" >/dev/null 2>&1 && return
    log "apt-get install $2"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || fail "$1 is not on PATH after 'apt-get install $2'"
}

target_dir() {
    if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
        echo "$CARGO_TARGET_DIR"
    else
        cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
    fi
}

# image_binary ARCH (amd64 | arm64): the binary the Docker image would hold at /peerconf, built
# by running the Dockerfile's build stage here (ci/dockerfile_build.py); prints its path on stdout,
# the build's output goes to stderr. Its workdir (with a persistent target/) lives in cargo's
# target directory.
image_binary() {
    local arch=$1 workdir
    workdir="$(target_dir)/dockerfile-build/$arch"
    log "Dockerfile build stage for linux/$arch (no Docker engine: its steps run here)" >&2
    python3 "$ROOT/ci/dockerfile_build.py" --arch "$arch" --workdir "$workdir" --context "$ROOT"
}
