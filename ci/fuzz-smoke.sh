#!/usr/bin/env bash
# Fuzz smoke: every cargo-fuzz target in fuzz/ for a short while (PEERCONF_FUZZ_SECONDS,
# default 30) on the nightly toolchain (libFuzzer + AddressSanitizer), starting from the
# committed seed corpus fuzz/corpus/<target>/ and the dictionary fuzz/dict/jinja.dict.
# Fails on any crash: a panic (a broken invariant), a hang (-timeout), or memory over
# -rss_limit_mb, or a single allocation over 64 MB (-malloc_limit_mb: the memory invariant,
# a success or a clean error within a fixed budget). The crashing input is left in
# fuzz/artifacts/<target>/.
#
# Idempotent: installs cargo-fuzz (cargo install --locked) only when it is missing; new
# corpus entries go to a scratch directory, so the committed seeds stay as they are.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT/fuzz"

seconds=${PEERCONF_FUZZ_SECONDS:-30}

rustup toolchain list | grep -q '^nightly' ||
    fail "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz present: $(cargo +nightly fuzz --version)"
else
    log "cargo install --locked cargo-fuzz (not installed yet)"
    cargo install --locked cargo-fuzz
fi

log "cargo +nightly fuzz build (all targets, release + debug assertions + ASan)"
cargo +nightly fuzz build

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$scratch/$target"
    log "fuzz $target for ${seconds}s (seeds: fuzz/corpus/$target)"
    if cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=64 \
        -dict=dict/jinja.dict -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$target.log")
        ok "$target: ${runs:-?} executions, no crash"
    else
        grep -E 'panicked at|^thread|assertion|ERROR: libFuzzer|SUMMARY|Test unit written' \
            "$scratch/$target.log" | head -20 >&2 || true
        printf 'FAIL  %s: crashed; reproduce with: (cd fuzz && cargo +nightly fuzz run %s artifacts/%s/<file>)\n' \
            "$target" "$target" "$target" >&2
        failed+=("$target")
    fi
done
[[ ${#failed[@]} -eq 0 ]] || fail "fuzz targets that crashed: ${failed[*]}"
ok "every fuzz target ran ${seconds}s without a crash"
