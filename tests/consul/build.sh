#!/usr/bin/env bash
# A Consul server binary built from the Go module proxy, for `consul validate` and a real
# 3-server cluster (issue 22 item 4). Consul <= 1.14.x only: MPL-2.0, and before
# consul/envoyextensions and consul/troubleshoot (not-to-use: not an open-source licence) joined
# the module graph in 1.15. The module graph is checked against that list before anything is
# built. Consul's own go.mod has replace directives, so `go install ...@v` is refused: this
# builds it from a wrapper module (the go.mod beside this script requires it) in a cache outside
# the repository: $PEERCONF_CONSUL_CACHE (default /var/cache/peerconf-consul).
#
#   tests/consul/build.sh            # prints the binary's path; exit 1 with the error otherwise
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CONSUL_VERSION=${CONSUL_VERSION:-v1.14.11}
cache=${PEERCONF_CONSUL_CACHE:-/var/cache/peerconf-consul}/$CONSUL_VERSION
bin=$cache/consul
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$cache/wrap"
cd "$cache/wrap"
[ -f go.mod ] || go mod init peerconf.test/consulbuild >&2
go get "github.com/hashicorp/consul@$CONSUL_VERSION" >&2
# The whole module graph, checked against the not-to-use list before building.
banned=$(go mod graph | tr ' ' '\n' | sed 's/@.*//' | sort -u |
    grep -xE 'github.com/hashicorp/consul/(envoyextensions|troubleshoot)' || true)
if [ -n "$banned" ]; then
    echo "build.sh: the module graph of consul $CONSUL_VERSION holds not-to-use modules: $banned" >&2
    exit 1
fi
CGO_ENABLED=0 go build -trimpath -o "$bin" github.com/hashicorp/consul >&2
"$bin" version >&2
echo "$bin"
