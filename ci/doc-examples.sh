#!/usr/bin/env bash
# Docs examples: every `peerconf render|check|test|explain` command (and `cargo run ... -- render|
# check|test|explain`) in a ```sh / ```bash / ```console block of README.md and docs/*.md is run from
# the repository root against the release binary, and its exit code is checked.
#
#   ci/doc-examples.sh                         build (cargo build --release --locked), then run
#   PEERCONF_BIN=path ci/doc-examples.sh       test this binary instead of building one
#   ci/doc-examples.sh README.md docs/x.md     only these files
#
# Conventions in the docs (details in ci/doc_examples.py):
#   - a command is expected to exit 0. Before a block whose commands must fail, put
#       <!-- doc-examples: expect-exit N -->
#     and every command run from that block must exit exactly N.
#   - <!-- doc-examples: skip REASON --> before a block: not run (reason printed).
#   - kubectl, docker, cargo test and other commands are shown, never run. Setup lines in a
#     block run in order with the examples: `mkdir [-p] /tmp/...`, and printf/echo/cat
#     writing a file under /tmp (`printf '...' > /tmp/f`, `cat > /tmp/f <<'EOF'`).
#   - `/tmp` in a command becomes a fresh empty directory per docs file, so examples can write
#     to /tmp/... as a user would, without touching the machine's /tmp.
#   - `cargo run [ARGS] --` is run as `peerconf` (same arguments, the binary under test);
#     DOC_EXAMPLES_CARGO_RUN=1 runs it as written.
#   - the environment variables peerconf reads (POD_*, REPLICAS, CLUSTER_DOMAIN, PEERCONF_*)
#     are removed, so each example gets what it shows and nothing from the machine.
#
# Prints one line per command (ok/FAIL FILE:LINE) and ends with exactly
# `doc-examples: N passed, M failed`; exits non-zero if M > 0. Needs only bash, python3 and,
# without PEERCONF_BIN, a Rust toolchain. Works as root or not; writes nothing outside a temp
# dir (and target/ when it builds).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

command -v python3 >/dev/null 2>&1 || {
    echo "doc-examples: python3 is required (apt-get install python3)" >&2
    exit 1
}

if [[ -n ${PEERCONF_BIN:-} ]]; then
    bin=$(cd "$(dirname "$PEERCONF_BIN")" && pwd)/$(basename "$PEERCONF_BIN")
    [[ -x $bin ]] || {
        echo "doc-examples: PEERCONF_BIN=$PEERCONF_BIN is not an executable file" >&2
        exit 1
    }
else
    echo "==> cargo build --release --locked"
    cargo build --release --locked
    bin=$ROOT/target/release/peerconf
fi
unset PEERCONF_BIN

scratch=$(mktemp -d "${TMPDIR:-/tmp}/peerconf-doc-bin.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
ln -s "$bin" "$scratch/peerconf"
export PATH="$scratch:$PATH"
[[ $(command -v peerconf) == "$scratch/peerconf" ]] || {
    echo "doc-examples: could not put $bin on PATH as peerconf" >&2
    exit 1
}
echo "==> peerconf on PATH: $bin ($(peerconf --version))"

if [[ $# -gt 0 ]]; then
    files=("$@")
else
    files=(README.md)
    shopt -s nullglob
    files+=(docs/*.md)
fi

python3 ci/doc_examples.py "${files[@]}"
