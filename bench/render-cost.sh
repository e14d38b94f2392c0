#!/usr/bin/env bash
# Render cost (issue 21 item 4): one `render --wait none` of manifests/consul.json against the
# seed tutorial's init step, everything on tmpfs, and where the difference goes.
#
#   bench/render-cost.sh [options] NAME=BINARY...
#     --runs N        hyperfine runs per command (default 300)
#     --warmup N      hyperfine warm-up runs (default 20)
#     --blocks N      split the runs into N hyperfine invocations, the command order rotated each
#                     time, and pool them (default 1): on a loaded machine a burst of load then
#                     lands on every command alike instead of on one command's block
#     --sym NAME=BIN  a symbolized build of NAME (not stripped) for callgrind; repeatable
#     --no-time       counts only (strace, page faults, callgrind), no hyperfine
#     --keep DIR      keep the raw results (hyperfine JSON, strace listings, callgrind files)
#
# For each NAME=BINARY: the hyperfine -N median against busybox (the ratio the issue targets),
# the syscalls by name (strace -f -c) and their listing (strace -f), the minor page faults
# (/usr/bin/time %R, median of 21 runs), and, with --sym, the instruction count (callgrind)
# and the top inclusive entries. The 1-min load is printed before and after each timing.
#
# The busybox step is the tutorial's: busybox sh -c 'cp /ro/consul.json /cfg/ && sed -i
# s/default/$NS/g /cfg/consul.json', with the tutorial's consul.json (bench/tutorial-consul.json).
# peerconf reads the template from the same tmpfs (a copy of manifests/consul.json) and writes to
# it. Installs hyperfine, busybox-static, strace, valgrind and time with apt when absent (root).
# Nothing leaves the temp directory, which is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=300 WARMUP=20 TIME=1 KEEP= BLOCKS=1
BINS=() SYMS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --blocks) BLOCKS=$2; shift ;;
    --sym) SYMS+=("$2"); shift ;;
    --no-time) TIME=0 ;;
    --keep) KEEP=$2; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *=*) BINS+=("$1") ;;
    *) echo "bench/render-cost.sh: expected NAME=BINARY or an option, got $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "bench/render-cost.sh: give at least one NAME=BINARY" >&2; exit 2; }

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v busybox >/dev/null || need+=(busybox-static)
command -v strace >/dev/null || need+=(strace)
command -v valgrind >/dev/null || need+=(valgrind)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BUSYBOX=$(command -v busybox)

# peerconf reads these from the environment: everything is passed as flags here.
for v in $(env | sed -n 's/^\(PEERCONF_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset POD_NAME POD_IP REPLICAS POD_NAMESPACE CLUSTER_DOMAIN HOSTNAME || true

W=$(mktemp -d /dev/shm/peerconf-render.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ "$(stat -f -c %T "$W")" = tmpfs ] || { echo "bench/render-cost.sh: $W is not on tmpfs" >&2; exit 1; }
NS=prod
mkdir -p "$W/ro" "$W/cfg" "$W/tpl" "$W/res"
cp bench/tutorial-consul.json "$W/ro/consul.json"
cp manifests/consul.json "$W/tpl/consul.json"
printf 'search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.77.0.1\noptions ndots:5\n' $NS >"$W/resolv.conf"
BB="$BUSYBOX sh -c 'cp $W/ro/consul.json $W/cfg/ && sed -i s/default/$NS/g $W/cfg/consul.json'"
pc() { # BINARY OUTDIR
    echo "$1 render --wait none --template $W/tpl/consul.json --output $2/consul.json --pod-name consul-1 --replicas 3 --pod-ip 10.0.0.11 --namespace $NS --resolv-conf $W/resolv.conf"
}
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "busybox: $BB"
for b in "${BINS[@]}"; do
    name=${b%%=*} bin=${b#*=}
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
    mkdir -p "$W/out-$name"
    echo "$name: $(pc "$bin" "$W/out-$name") ($(stat -c %s "$bin") bytes)"
    # A wrong render is not a measurement.
    # shellcheck disable=SC2046
    $(pc "$bin" "$W/out-$name") 2>/dev/null
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bootstrap_expect"] == 3 and len(d["retry_join"]) == 3, d' "$W/out-$name/consul.json"
done
# shellcheck disable=SC2086
eval "$BB"
grep -q "\.$NS\." "$W/cfg/consul.json" || { echo "the busybox step did not substitute the namespace" >&2; exit 1; }

if [ "$TIME" = 1 ]; then
    names=(busybox) cmds=("$BB")
    for b in "${BINS[@]}"; do names+=("${b%%=*}") cmds+=("$(pc "${b#*=}" "$W/out-${b%%=*}")"); done
    per=$(((RUNS + BLOCKS - 1) / BLOCKS))
    echo
    echo "== hyperfine -N --warmup $WARMUP --runs $per, $BLOCKS block(s) (load before: $(load))"
    for ((k = 0; k < BLOCKS; k++)); do
        # Rotate the (name, command) pairs by k.
        n=${#cmds[@]} args=()
        for ((j = 0; j < n; j++)); do
            i=$(((j + k) % n))
            args+=(-n "${names[i]}" "${cmds[i]}")
        done
        hyperfine -N --style none --warmup "$WARMUP" --runs "$per" --export-json "$W/res/hyperfine.$k.json" "${args[@]}" >/dev/null
    done
    echo "load after: $(load)"
    python3 - "$W"/res/hyperfine.*.json <<'EOF'
import json, statistics, sys
rows = {}
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        row = rows.setdefault(r["command"], {"times": [], "user": [], "system": []})
        row["times"] += r["times"]
        row["user"].append(r["user"])
        row["system"].append(r["system"])
for row in rows.values():
    row["user"] = statistics.mean(row["user"])
    row["system"] = statistics.mean(row["system"])
rows = {name: rows[name] for name in ["busybox"] + [n for n in rows if n != "busybox"]}
bb = statistics.median(rows["busybox"]["times"])
print("| command | runs | median | mean ± σ | min | user | system | median / busybox |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    t = r["times"]
    med = statistics.median(t)
    print(f"| {name} | {len(t)} | {med*1e3:.3f} ms | {statistics.mean(t)*1e3:.3f} ± {statistics.stdev(t)*1e3:.3f} ms "
          f"| {min(t)*1e3:.3f} ms | {r['user']*1e3:.3f} ms | {r['system']*1e3:.3f} ms | {med/bb:.2f}x |")
EOF
fi

for b in "${BINS[@]}"; do
    name=${b%%=*} bin=${b#*=}
    # shellcheck disable=SC2046
    strace -f -c -o "$W/res/strace-c.$name" $(pc "$bin" "$W/out-$name") 2>/dev/null
    # shellcheck disable=SC2046
    strace -f -o "$W/res/strace.$name" $(pc "$bin" "$W/out-$name") 2>/dev/null
    faults=()
    for _ in $(seq 21); do
        # shellcheck disable=SC2046
        /usr/bin/time -f %R -o "$W/res/time" $(pc "$bin" "$W/out-$name") 2>/dev/null
        faults+=("$(cat "$W/res/time")")
    done
    echo
    echo "== $name: syscalls (strace -f -c): $(awk '$NF == "total" {print $4}' "$W/res/strace-c.$name"); minor page faults (median of 21): $(printf '%s\n' "${faults[@]}" | sort -n | sed -n 11p)"
    awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" {n = ($5 ~ /^[0-9]+$/) ? 6 : 5; printf "%s %s\n", $4, $n}' "$W/res/strace-c.$name" | sort -k1,1nr | tr '\n' ',' | sed 's/,$/\n/; s/,/, /g'
done
[ "$TIME" = 1 ] || true
for s in "${SYMS[@]}"; do
    name=${s%%=*} sym=${s#*=}
    mkdir -p "$W/out-sym-$name"
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --callgrind-out-file="$W/res/cg.$name" $(pc "$sym" "$W/out-sym-$name") >/dev/null 2>"$W/res/vg.$name"
    echo
    echo "== $name (symbolized): instructions (callgrind): $(sed -n 's/.*Collected : //p' "$W/res/vg.$name")"
    callgrind_annotate --inclusive=yes "$W/res/cg.$name" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '3,40p' |
        sed -E 's/ \[[^]]*\]$//; s#/root/.cargo/registry/src/[^/]*/##; s#/rustc/[0-9a-f]*/##' | cut -c1-160
done
if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp -r "$W/res/." "$KEEP/"; fi
