#!/usr/bin/env bash
# Builds the real components of the k8s suite from source, with CGO_ENABLED=0, pinned by the
# wrapper modules beside this script (kube/, etcd/, coredns/: go.mod + go.sum committed):
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl   (k8s.io/kubernetes)
#   etcd                                                               (go.etcd.io/etcd/server/v3)
#   coredns                                                            (github.com/coredns/coredns)
#
# Each component goes to $K8S_CACHE/<component>-<version>/ (default /var/cache/peerconf-k8s),
# outside the repository, and is built only when that directory lacks its .complete stamp: a
# second run takes seconds. The stamp records the build's wall time (/usr/bin/time -v) and the
# binaries' sizes; `build.sh --report` prints them.
#
#   tests/k8s/build.sh            # build what is missing, print the bin directories
#   tests/k8s/build.sh --report   # cold build times and sizes from the stamps
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${K8S_CACHE:-/var/cache/peerconf-k8s}
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

modver() { # the version a wrapper module requires of a module
    awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit } ($1 == m && $2 ~ /^v/) { print $2; exit }' "$here/$1/go.mod"
}
KUBE_VERSION=$(modver kube k8s.io/kubernetes)
ETCD_VERSION=$(modver etcd go.etcd.io/etcd/server/v3)
COREDNS_VERSION=$(modver coredns github.com/coredns/coredns)
[ -n "$KUBE_VERSION" ] && [ -n "$ETCD_VERSION" ] && [ -n "$COREDNS_VERSION" ] || {
    echo "build.sh: could not read the versions from the wrapper go.mod files" >&2; exit 2; }

kube_dir=$cache/kube-$KUBE_VERSION
etcd_dir=$cache/etcd-$ETCD_VERSION
coredns_dir=$cache/coredns-$COREDNS_VERSION

if [ "${1:-}" = --report ]; then
    for d in "$kube_dir" "$etcd_dir" "$coredns_dir"; do
        [ -f "$d/.complete" ] && cat "$d/.complete" || echo "$(basename "$d"): not built"
    done
    exit 0
fi

command -v /usr/bin/time >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq time >/dev/null; }

# build NAME DIR MODULE_DIR LDFLAGS PKG...: go build into DIR/, timed, stamped when complete.
build() {
    local name=$1 dir=$2 mod=$3 ldflags=$4
    shift 4
    if [ -f "$dir/.complete" ]; then return 0; fi
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    echo "build.sh: building $name (cold: minutes; output $dir)" >&2
    local t0=$SECONDS
    ( cd "$here/$mod" &&
      /usr/bin/time -v -o "$dir.tmp/time-v.txt" \
        nice -n 5 go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/${OUT_NAME:-}" "$@" ) || {
        echo "build.sh: $name failed to build" >&2; exit 1; }
    local wall=$((SECONDS - t0))
    {
        echo "$name: go build of $* ($(go version | awk '{print $3}'), CGO_ENABLED=0, -trimpath -s -w)"
        echo "  wall ${wall}s; $(grep -E 'User time|System time|Maximum resident|Percent of CPU' "$dir.tmp/time-v.txt" | sed 's/^\s*//' | paste -sd';' | sed 's/;/; /')"
        for b in "$dir.tmp"/*; do
            [ -x "$b" ] && [ -f "$b" ] && echo "  $(basename "$b"): $(stat -c %s "$b") bytes"
        done
    } > "$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    cat "$dir/.complete" >&2
}

date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
kv() { # the version ldflags of k8s.io/component-base and client-go (what kubectl version prints)
    local p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=%s ' \
            "$p" "$KUBE_VERSION" "$p" "$p" "$minor" "$p" "$p" "$date_utc"
    done
}
build kube "$kube_dir" kube "-s -w $(kv)" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
OUT_NAME=etcd build etcd "$etcd_dir" etcd "-s -w" go.etcd.io/etcd/server/v3
build coredns "$coredns_dir" coredns "-s -w" github.com/coredns/coredns

echo "KUBE_BIN=$kube_dir"
echo "ETCD_BIN=$etcd_dir"
echo "COREDNS_BIN=$coredns_dir"
