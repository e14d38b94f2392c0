#!/usr/bin/env bash
# Supply chain: fail on any RustSec advisory (vulnerable, unmaintained, unsound or yanked
# crates: --deny warnings) in Cargo.lock and fuzz/Cargo.lock, against the advisory-db
# snapshot at ../shared/advisory-db beside the checkout (CI has no network beyond the package
# registries, hence --no-fetch); then print the licences of the crates the binary ships.
#
# Idempotent: installs cargo-audit (cargo install --locked) only when it is missing.
# PEERCONF_ADVISORY_DB overrides the database path.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

db=${PEERCONF_ADVISORY_DB:-$ROOT/../shared/advisory-db}
[[ -d $db/crates ]] || fail "no RustSec advisory database at $db (expected ../shared/advisory-db beside the checkout)"
db=$(cd "$db" && pwd)

if cargo audit --version >/dev/null 2>&1; then
    log "cargo-audit present: version $(cargo audit --version | awk '{print $NF}')"
else
    log "cargo install --locked cargo-audit (not installed yet)"
    cargo install --locked cargo-audit
fi

# cargo-audit also checks for yanked versions in cargo's local index cache: fill it, so a
# fresh machine gives the same answer as a warm one.
log "cargo fetch --locked (root), cargo fetch (fuzz/)"
cargo fetch --locked --quiet
# fuzz/Cargo.lock follows the root crate's dependencies; when they changed, bring it up to
# date (as `cargo fuzz build` would) and audit what the fuzz build really uses.
before=$(mktemp)
trap 'rm -f "$before"' EXIT
cp fuzz/Cargo.lock "$before"
cargo fetch --quiet --manifest-path fuzz/Cargo.toml
if ! cmp -s fuzz/Cargo.lock "$before"; then
    log "note: fuzz/Cargo.lock was stale (the root crate's dependencies changed); commit the update"
fi

for lock in Cargo.lock fuzz/Cargo.lock; do
    log "cargo audit --no-fetch --db $db --deny warnings --file $lock"
    cargo audit --no-fetch --db "$db" --deny warnings --file "$lock" ||
        fail "RustSec advisories in $lock (see above); update or replace the crate"
    ok "no advisory applies to $lock"
done

log "licences of the crates in the shipped binary (cargo tree -e normal, the image's musl targets)"
cargo tree --locked -e normal --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl \
    --prefix none --format '{p}|{l}' |
    sed 's/ (\*)$//; s/ (proc-macro)$//' | grep '|' | grep -v '^peerconf v' | sort -u |
    awk -F'|' '{ split($1, p, " "); n[$2]++; crates[$2] = crates[$2] (crates[$2] ? ", " : "") p[1] }
        END { for (l in n) printf "%4d  %s: %s\n", n[l], (l == "" ? "(none declared)" : l), crates[l] }' |
    sort -rn
