#!/usr/bin/env bash
# peerconf on a real Kubernetes control plane (issue 19): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and CoreDNS built from source (build.sh), a node agent
# in place of the kubelet (agent.py), the shipped manifests applied with kubectl. See README.md.
#
#   sudo tests/k8s/run.sh                 # every scenario
#   sudo tests/k8s/run.sh consul etcd     # some (names: SCENARIOS in suite.py)
#
# Needs root (network and mount namespaces, chroot). Installs what it lacks (apt: openssl,
# iproute2, etcd-server, etcd-client, zookeeper, default-jre-headless, nats-server, redis-server,
# redis-sentinel, time, curl; PyPI: PyYAML), builds the control plane when its cache lacks it
# (K8S_CACHE, default /var/cache/peerconf-k8s), Consul with tests/consul/build.sh when its cache
# lacks it (PEERCONF_CONSUL_CACHE, default /var/cache/peerconf-consul), and peerconf with `cargo build --release
# --locked` unless PEERCONF_BIN names a binary. K8S_KEEP=1 keeps the work dir (every log).
# Ends with `k8s: N passed, M failed`; exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
say() { printf 'k8s: %s\n' "$*"; }
export K8S_STARTED_AT=$(date +%s.%N) # suite.py prints the total before its last line

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (network and mount namespaces, chroot); run: sudo $0"
    exit 2
fi

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
[ -x /usr/bin/time ] || missing+=(time)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
[ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v nc >/dev/null || missing+=(netcat-openbsd) # the zookeeper image's readiness probe runs nc
command -v curl >/dev/null || missing+=(curl)            # the Consul base's readiness probe runs curl
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pyyaml

# --- the control plane (cached by version) ---------------------------------------------------
t=$SECONDS
"$here/check-go-sums.sh"
eval "$("$here/build.sh")"
say "control plane binaries ready in $((SECONDS - t))s: $KUBE_BIN $ETCD_BIN $COREDNS_BIN"
# Consul for the hashicorp/consul image (v1.14.11 from the Go module proxy; cached by version).
t=$SECONDS
consul=$("$repo/tests/consul/build.sh")
say "consul ready in $((SECONDS - t))s: $consul"

# --- peerconf ---------------------------------------------------------------------------------
if [ -n "${PEERCONF_BIN:-}" ]; then
    bin=$PEERCONF_BIN
else
    t=$SECONDS
    cargo build --release --locked --quiet
    target=$(cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target/release/peerconf
    say "cargo build --release in $((SECONDS - t))s"
fi
[ -x "$bin" ] || { say "no executable at $bin"; exit 2; }

# --- run, and clean up whatever happens -----------------------------------------------------------
work=$(mktemp -d /tmp/peerconf-k8s.XXXXXX)
chmod 755 "$work"
# shellcheck source=tests/harness/driver.sh
source "$here/../harness/driver.sh"
driver_run "$work" K8S_KEEP 20 python3 -B -u "$here/suite.py" --workdir "$work" --bin "$bin" --repo "$repo" \
    --bins "$KUBE_BIN,$ETCD_BIN,$COREDNS_BIN" --consul "$consul" "$@"
