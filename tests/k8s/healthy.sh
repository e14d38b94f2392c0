#!/usr/bin/env bash
# Time to a healthy cluster on the real control plane, with CoreDNS in the path (issue 19 item 4,
# issue 21): the benchmark of BENCHMARKS.md "Time to a healthy cluster" (bench/healthy.py, the
# emulated tier: Debian datastores in network namespaces, dnsmasq as the cluster DNS) re-run on
# tests/k8s's real kube-apiserver, controller-manager, scheduler, etcd 3.6 and CoreDNS, with the
# node agent in place of the kubelet. Each run: `kubectl apply -k` of the shipped example unchanged
# (mode peerconf) or of an overlay whose init container runs `--wait=none` (mode prerendered),
# each pod's record delayed 0-3 s by the agent (status.podIP withheld; the same draws for every
# mode and Corefile of a round), time from the apply to the cluster healthy; then `kubectl delete
# pod <ds>-1` (data kept in its PVC, new IP) and the time to healthy again. Both Corefiles:
# kubeadm's (`cache 30` with `disable success/denial cluster.local`) and a plain `cache 30`.
# Results: BENCHMARKS.md "Time to a healthy cluster on the real control plane (CoreDNS)".
#
#   sudo tests/k8s/healthy.sh --bin /work/bin-main/peerconf --runs 10 --out results.json
#   sudo tests/k8s/healthy.sh --bin B --datastores nats,redis --corefiles plain --runs 3
#   sudo tests/k8s/healthy.sh --markdown results.json out.md     # the tables again, from a results file
#
# Other options (healthy.py): --modes peerconf,prerendered --budget SECS (no new round after)
# --deadline HH:MM (UTC: no new run after) --bound SECS --delay LO-HI --seed N --net 78 --prefix k8b.
# Without --bin it builds peerconf (`cargo build --release --locked`). Network 10.78.0.0/16 and
# namespace prefix k8b by default, so it can run beside tests/k8s/run.sh (10.77, k8s). Needs root;
# installs what it lacks as run.sh does, builds the control plane once (build.sh, cached in
# K8S_CACHE). Everything it starts is stopped on exit, INT and TERM (by recorded PID and start
# time), its network namespaces deleted; K8S_KEEP=1 keeps the work dir (every process's log).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
say() { printf 'k8s-healthy: %s\n' "$*"; }

if [ "${1:-}" = --markdown ]; then
    exec python3 -B "$here/healthy.py" "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
    say "needs root (network and mount namespaces, chroot); run: sudo $0 $*"
    exit 2
fi

bin=
out=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --bin=*) bin=${1#--bin=}; shift ;;
        --out) out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
[ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v nc >/dev/null || missing+=(netcat-openbsd)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pyyaml

"$here/check-go-sums.sh"
eval "$("$here/build.sh")"

if [ -z "$bin" ]; then
    cargo build --release --locked --quiet
    target=$(cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target/release/peerconf
fi
[ -x "$bin" ] || { say "no executable at $bin"; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d /tmp/peerconf-k8s-healthy.XXXXXX)
chmod 755 "$work"
[ -n "$out" ] || out=$work/healthy.json
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
# shellcheck source=tests/harness/driver.sh
source "$here/../harness/driver.sh"
rc=0
driver_run "$work" K8S_KEEP 30 python3 -B -u "$here/healthy.py" --workdir "$work" --bin "$bin" --repo "$repo" \
    --bins "$KUBE_BIN,$ETCD_BIN,$COREDNS_BIN" --out "$out" --commit "$commit" \
    --command "sudo tests/k8s/healthy.sh --bin $bin ${args[*]:-}" "${args[@]}" || rc=$?
say "results: $out"
exit "$rc"
