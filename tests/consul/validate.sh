#!/usr/bin/env bash
# `consul validate` (Consul 1.14.11, built by tests/consul/build.sh from the Go module proxy) on
# every config `peerconf check` renders from manifests/consul.json (3 and 5 replicas), plus a
# negative control: a misspelt key must be refused. .ci/run builds Consul in the background (the
# first build took 13 minutes on a loaded 2-core machine; then cached outside the repository)
# and runs this last; schemas/consul.schema.json stays the judge inside `cargo test`. Ends with `consul-validate: N passed, M failed`.
#
#   tests/consul/validate.sh [PEERCONF_BIN]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${PEERCONF_BIN:-$root/target/debug/peerconf}}
consul=$("$root/tests/consul/build.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" check --template "$root/manifests/consul.json" --statefulset consul --namespace default \
    --cluster-domain cluster.local --replicas 3,5 --output-dir "$work/rendered" >/dev/null
passed=0 failed=0
while IFS= read -r f; do
    if out=$("$consul" validate "$f" 2>&1); then
        echo "ok    ${f#"$work/rendered/"}: $(tail -n1 <<<"$out")"
        passed=$((passed + 1))
    else
        echo "FAIL  ${f#"$work/rendered/"}: $out"
        failed=$((failed + 1))
    fi
done < <(find "$work/rendered" -name '*.json' | sort)
((passed > 0)) || { echo "FAIL  no rendered config found"; failed=$((failed + 1)); }
sed 's/"bootstrap_expect"/"bootstrap_expcet"/' "$(find "$work/rendered" -name '*.json' | sort | head -n1)" >"$work/bad.json"
if "$consul" validate "$work/bad.json" >/dev/null 2>&1; then
    echo "FAIL  negative control: a misspelt key was accepted"
    failed=$((failed + 1))
else
    echo "ok    negative control: a misspelt key (bootstrap_expcet) is refused"
    passed=$((passed + 1))
fi
echo "consul-validate: $passed passed, $failed failed"
((failed == 0))
