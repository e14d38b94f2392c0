#!/usr/bin/env bash
# Where peerconf's time goes, in counts that do not depend on the machine's load:
#   - valgrind callgrind instruction counts (user space), with symbols, for
#     render --wait none (3 and 1001 replicas) and render --wait all (1001 names, dnsmasq);
#   - strace -c syscall counts and /usr/bin/time minor page faults of the measured binary.
#
#   bench/profile.sh [BINARY]    BINARY: the binary to count syscalls and faults of
#                                (default: the musl release build if present, else gnu)
#
# The symbolized build goes to target/bench-profile (release profile, not stripped, line
# tables), so the normal release build is left alone. Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PYTHONDONTWRITEBYTECODE=1
for v in $(env | sed -n 's/^\(PEERCONF_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset POD_NAME POD_IP REPLICAS POD_NAMESPACE CLUSTER_DOMAIN || true

for t in valgrind strace dnsmasq; do
    command -v $t >/dev/null || [ -x /usr/sbin/$t ] || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind strace dnsmasq-base time >/dev/null
        break
    }
done

TD=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --locked --target-dir "$TD/bench-profile"
SYM=$TD/bench-profile/release/peerconf
BIN=${1:-}
if [ -z "$BIN" ]; then
    BIN=$TD/$(uname -m)-unknown-linux-musl/release/peerconf
    [ -x "$BIN" ] || BIN=$TD/release/peerconf
fi
[ -x "$BIN" ] || { echo "no binary at $BIN: build it first (cargo build --release --locked)" >&2; exit 1; }

WORK=$(mktemp -d /dev/shm/peerconf-profile.XXXXXX)
chmod 755 "$WORK"
DPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

NS=prod
printf 'search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.77.0.1\n' $NS >"$WORK/resolv.conf"
mkdir -p "$WORK/hosts" "$WORK/out" && chmod 755 "$WORK/hosts"
for ((i = 0; i < 1001; i++)); do
    echo "10.$(((i + 1) >> 16 & 255)).$(((i + 1) >> 8 & 255)).$(((i + 1) & 255)) consul-$i.consul.$NS.svc.cluster.local"
done >"$WORK/hosts/.all"
chmod 644 "$WORK/hosts/.all" && mv "$WORK/hosts/.all" "$WORK/hosts/all"
read -r PORT DPID _ < <(python3 bench/dnsutil.py dnsmasq profile 127.77.4.1 "$WORK/hosts" "$WORK")
python3 bench/dnsutil.py wait 127.77.4.1 "$PORT" consul-1000.consul.$NS.svc.cluster.local noerror 5

common="--template $ROOT/manifests/consul.json --output $WORK/out/consul.json --namespace $NS --resolv-conf $WORK/resolv.conf"
declare -A CASES=(
    [none-3]="render --wait none $common --pod-name consul-1 --replicas 3 --pod-ip 10.0.0.2"
    [none-1001]="render --wait none $common --pod-name consul-0 --replicas 1001 --pod-ip 10.0.0.1"
    [all-1001]="render --wait all --timeout 60s $common --pod-name consul-0 --replicas 1001 --pod-ip 10.0.0.1 --nameserver 127.77.4.1:$PORT"
)
echo
echo "binary for syscalls and faults: $BIN ($(stat -c %s "$BIN") bytes); symbolized build: $SYM"
for c in none-3 none-1001 all-1001; do
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$c" "$SYM" ${CASES[$c]} >/dev/null 2>"$WORK/vg.$c" ||
        { tail "$WORK/vg.$c" >&2; exit 1; }
    ir=$(sed -n 's/.*Collected : //p' "$WORK/vg.$c")
    # shellcheck disable=SC2086
    sc=$(strace -f -c -o "$WORK/st.$c" "$BIN" ${CASES[$c]} >/dev/null 2>&1; awk '$NF == "total" {print $4}' "$WORK/st.$c")
    mm=$(awk '$NF == "mmap" || $NF == "munmap" {s += $4} END {print s+0}' "$WORK/st.$c")
    # shellcheck disable=SC2086
    pf=$(/usr/bin/time -f '%R' -o "$WORK/tm.$c" "$BIN" ${CASES[$c]} >/dev/null 2>&1; cat "$WORK/tm.$c")
    echo
    echo "=== $c: peerconf ${CASES[$c]}"
    echo "instructions (callgrind, symbolized gnu build): $ir"
    echo "syscalls (strace -f -c): $sc, of which mmap+munmap: $mm; minor page faults: $pf"
    echo "top inclusive (peerconf, hickory, tokio, clap, minijinja, tracing, malloc):"
    callgrind_annotate --inclusive=yes "$WORK/cg.$c" 2>/dev/null |
        grep -E 'peerconf::(app|dns|variables|template|identity)|hickory_[a-z]+::[a-z_:]+(CachingClient|NameServerPool|udp_client_stream|Message::from_vec|Message::to_vec)|Command::_do_parse|augment_args|malloc.c:(malloc|free) |Event::dispatch |sip::Hasher' |
        head -25 | sed -E 's/ \[[^]]*\]$//; s#/root/.cargo/registry/src/[^/]*/##; s#/rustc/[0-9a-f]*/##' | cut -c1-170 || true
done
