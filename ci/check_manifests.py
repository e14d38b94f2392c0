#!/usr/bin/env python3
"""Checks the kustomize-built manifests against the rules peerconf depends on, then runs every
peerconf init container in them through the real binary, the way a kubelet would start it.

    check_manifests.py --binary target/x86_64-unknown-linux-musl/release/peerconf \
        --version 0.1.0 NAME=built.yaml [NAME=built.yaml ...]

Policy (per built base): for every StatefulSet with a peerconf init container,
podManagementPolicy Parallel; a headless governing Service with publishNotReadyAddresses; REPLICAS
equal to spec.replicas; the downward-API env; the hardened securityContext; requests and limits;
fsGroup; a volumeClaimTemplate; readiness probes; soft anti-affinity; a PodDisruptionBudget with
maxUnavailable 1; the peerconf image tag equal to the crate version. The Consul base also gets
its own rules (Consul 1.22.x, -config-file, preStop leave, the leader probe, Ingress v1).

Run (as root: it uses chroot): for every ordinal, a root directory is built with what the pod
would see: the static binary as /peerconf (the image), /etc/resolv.conf and /etc/hosts as the
kubelet writes them, every ConfigMap volume in the kubelet's `..data` symlink layout from the
built ConfigMap, every emptyDir group-owned by fsGroup with the setgid bit. The init container's
command and args run verbatim (with $(VAR) expansion), under `env -i` with the env the kubelet
would give (downward API values, HOSTNAME, KUBERNETES_SERVICE_*), as the container's uid/gid plus
fsGroup. A small DNS server answers the pods' names, so `--wait` policies run for real.
  1. the real render: exit 0, files written with the right mode and group, every peer's FQDN in
     them, JSON outputs parse;
  2. the same args plus --dry-run: exit 0, every peer's FQDN on stdout, nothing written;
  3. each main container finds each rendered file where it looks (a path in its command/args
     under a mount of the volume, or a subPath mount), and its uid/gid/fsGroup can read it; every
     rendered file is used by some container;
  4. one ordinal past spec.replicas (a bare `kubectl scale`) fails with exit 2, writing nothing.
Prints one line per check; exits 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import yaml

NAMESPACE = "prod"
CLUSTER_DOMAIN = "kube.example"  # not cluster.local: must come from resolv.conf's search list
IMAGE_UID = 65532  # USER in the Dockerfile
IMAGE_ENTRYPOINT = ["/peerconf"]
FAILURES = []


def ok(msg):
    print(f"ok    {msg}", flush=True)


def bad(msg):
    FAILURES.append(msg)
    print(f"FAIL  {msg}", flush=True)


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        bad(f"{msg}{': ' + detail if detail else ''}")
    return cond


def pod_ip(ordinal):
    return f"10.244.{ordinal // 200}.{ordinal % 200 + 10}"


# --------------------------------------------------------------------------------------------
# A minimal authoritative DNS server (UDP): A records for the pods, NXDOMAIN for anything else.


class DnsServer:
    def __init__(self):
        self.records = {}
        self.queries = 0
        self.sock = None
        for last in range(1, 50):
            addr = f"127.88.0.{last}"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))  # resolv.conf cannot name a port
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, addr
            break
        if self.sock is None:
            raise SystemExit("FAIL  no free 127.88.0.x:53 for the test DNS server")
        self.sock.settimeout(0.1)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            try:
                self.sock.sendto(self.answer(data), peer)
            except (IndexError, struct.error):
                pass

    def answer(self, data):
        qid, flags = struct.unpack(">HH", data[:4])
        pos, labels = 12, []
        while data[pos]:
            n = data[pos]
            labels.append(data[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        qtype = struct.unpack(">H", data[pos + 1 : pos + 3])[0]
        question = data[12 : pos + 5]
        name = ".".join(labels).lower()
        self.queries += 1
        answers = []
        if name in self.records:
            rcode = 0
            if qtype == 1:
                ip = socket.inet_aton(self.records[name])
                answers.append(struct.pack(">HHHIH", 0xC00C, 1, 1, 5, 4) + ip)
        else:
            rcode = 3  # NXDOMAIN
        rflags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode  # QR, opcode+RD, AA, RA
        return struct.pack(">HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question + b"".join(answers)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


# --------------------------------------------------------------------------------------------
# Policy


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def is_peerconf(container):
    return "peerconf" in container.get("image", "")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def policy(base, docs, version):
    stss = by_kind(docs, "StatefulSet")
    check(stss, f"{base}: has a StatefulSet")
    for sts in stss:
        name = sts["metadata"]["name"]
        where = f"{base}: StatefulSet {name}"
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        check(sts["apiVersion"] == "apps/v1", f"{where}: apps/v1")
        check(spec.get("podManagementPolicy") == "Parallel", f"{where}: podManagementPolicy Parallel")
        svc = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == spec.get("serviceName")]
        if check(svc, f"{where}: governing Service '{spec.get('serviceName')}' is in the build"):
            s = svc[0]["spec"]
            check(s.get("clusterIP") == "None", f"{where}: Service {spec['serviceName']} is headless")
            check(s.get("publishNotReadyAddresses") is True,
                  f"{where}: Service {spec['serviceName']} has publishNotReadyAddresses: true")
            check(s.get("selector") and all(labels.get(k) == v for k, v in s["selector"].items()),
                  f"{where}: Service {spec['serviceName']} selects the pods")
        check(selects(spec["selector"], labels), f"{where}: selector matches the pod labels")
        check(spec.get("volumeClaimTemplates"), f"{where}: has a volumeClaimTemplate")
        psc = pod.get("securityContext", {})
        check(psc.get("fsGroup") is not None, f"{where}: pod fsGroup set ({psc.get('fsGroup')})")
        check(pod.get("automountServiceAccountToken") is False, f"{where}: no service account token")
        anti = pod.get("affinity", {}).get("podAntiAffinity", {})
        check(anti.get("preferredDuringSchedulingIgnoredDuringExecution")
              and not anti.get("requiredDuringSchedulingIgnoredDuringExecution"),
              f"{where}: soft pod anti-affinity")
        pdbs = [p for p in by_kind(docs, "PodDisruptionBudget") if selects(p["spec"].get("selector"), labels)]
        check(len(pdbs) == 1 and pdbs[0]["apiVersion"] == "policy/v1" and pdbs[0]["spec"].get("maxUnavailable") == 1,
              f"{where}: one policy/v1 PodDisruptionBudget with maxUnavailable 1")
        inits = [c for c in pod.get("initContainers", []) if is_peerconf(c)]
        if not check(len(inits) == 1, f"{where}: one peerconf init container"):
            continue
        init = inits[0]
        image = init["image"]
        check(image.endswith(f":{version}"), f"{where}: peerconf image {image} is the crate's version {version}")
        env = env_map(init)
        replicas = spec.get("replicas", 1)
        check(env.get("REPLICAS", {}).get("value") == str(replicas),
              f"{where}: REPLICAS env == spec.replicas ({replicas})",
              f"REPLICAS={env.get('REPLICAS', {}).get('value')!r}")
        for var, path in [("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name"),
                          ("POD_IP", "status.podIP")]:
            got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            check(got == path, f"{where}: {var} from the downward API ({path})", f"got {got}")
        args = init.get("args", [])
        check(args[:1] == ["render"] and any(a.startswith("--wait") for a in args),
              f"{where}: init args are `render ...` with an explicit --wait", " ".join(args))
        sc = init.get("securityContext", {})
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        hardened = {
            "runAsNonRoot": sc.get("runAsNonRoot") is True,
            "runAsUser 65532": sc.get("runAsUser") == 65532,
            "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
            "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
            "drop ALL": sc.get("capabilities", {}).get("drop") == ["ALL"]
                        and not sc.get("capabilities", {}).get("add"),
            "seccomp RuntimeDefault": seccomp == "RuntimeDefault",
        }
        check(all(hardened.values()), f"{where}: init container hardened ({', '.join(hardened)})",
              "missing " + ", ".join(k for k, v in hardened.items() if not v))
        res = init.get("resources", {})
        check(all(res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")),
              f"{where}: init container has cpu/memory requests and limits")
        for c in pod["containers"]:
            check(c.get("readinessProbe"), f"{where}: container {c['name']} has a readiness probe")
            csc = c.get("securityContext", {})
            check(csc.get("allowPrivilegeEscalation") is False and csc.get("capabilities", {}).get("drop") == ["ALL"]
                  and (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")),
                  f"{where}: container {c['name']} non-root, no privilege escalation, drops ALL")
            if c["image"].startswith("hashicorp/consul"):
                consul(where, c, docs)


def consul(where, c, docs):
    check(re.fullmatch(r"hashicorp/consul:1\.22\.\d+", c["image"]), f"{where}: Consul 1.22.x ({c['image']})")
    argv = c.get("command", []) + c.get("args", [])
    check(any(a.startswith("-config-file=") for a in argv), f"{where}: consul runs with -config-file")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(pre == ["consul", "leave"], f"{where}: preStop `consul leave`")
    probe = yaml.safe_dump(c.get("readinessProbe", {}))
    check("/v1/status/leader" in probe, f"{where}: readiness probe on /v1/status/leader")
    ingresses = by_kind(docs, "Ingress")
    check(ingresses and all(i["apiVersion"] == "networking.k8s.io/v1" and i["spec"].get("ingressClassName")
                            for i in ingresses), f"{where}: Ingress networking.k8s.io/v1 with ingressClassName")
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    for i in ingresses:
        for rule in i["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                target = p["backend"]["service"]["name"]
                check(target in services and services[target]["spec"].get("clusterIP") != "None",
                      f"{where}: Ingress backend {target} is a (non-headless) Service in the build")


# --------------------------------------------------------------------------------------------
# Running the init containers


def expand(text, env):
    """The kubelet's $(VAR) expansion in command, args and env values; $$ escapes."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, text)


def container_env(c, pod, name, ordinal, docs):
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": name,
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    }
    fields = {
        "metadata.namespace": NAMESPACE,
        "metadata.name": name,
        "status.podIP": pod_ip(ordinal),
        "status.podIPs": pod_ip(ordinal),
        "status.hostIP": "192.168.0.10",
        "spec.nodeName": "node-1",
        "spec.serviceAccountName": pod.get("serviceAccountName", "default"),
    }
    if pod.get("enableServiceLinks", True):
        raise SystemExit(f"FAIL  {name}: enableServiceLinks is not false; this check does not model service links")
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == ref["name"]]
            env[e["name"]] = cms[0]["data"][ref["key"]]
        else:
            raise SystemExit(f"FAIL  {name}: env {e['name']}: this check does not model {e.get('valueFrom')}")
    return env


def ids(c, pod, default_uid):
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    uid = sc.get("runAsUser", psc.get("runAsUser", default_uid))
    gid = sc.get("runAsGroup", psc.get("runAsGroup", uid))
    groups = ([psc["fsGroup"]] if "fsGroup" in psc else []) + psc.get("supplementalGroups", [])
    return uid, gid, groups


def populate(root, c, pod, docs, fs_group):
    """Creates the init container's volumes at their mount paths; returns {volume: host dir}
    for the emptyDirs."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    empty = {}
    for m in c.get("volumeMounts", []):
        if m.get("subPath"):
            raise SystemExit(f"FAIL  init container {c['name']}: subPath mounts are not modelled here")
        v = volumes[m["name"]]
        target = os.path.join(root, m["mountPath"].lstrip("/"))
        if "configMap" in v:
            cm_name = v["configMap"]["name"]
            cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == cm_name]
            if not cms:
                raise SystemExit(f"FAIL  volume {m['name']}: ConfigMap {cm_name} is not in the build")
            data = cms[0].get("data", {})
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            mode = v["configMap"].get("defaultMode", 0o644)
            stamp = "..2026_01_01_00_00_00.000000001"
            os.makedirs(os.path.join(target, stamp))
            for it in items:
                p = os.path.join(target, stamp, it["path"])
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write(data[it["key"]])
                os.chmod(p, it.get("mode", mode))
                if fs_group is not None:
                    os.chown(p, 0, fs_group)
            os.symlink(stamp, os.path.join(target, "..data"))
            for top in {it["path"].split("/")[0] for it in items}:
                os.symlink(os.path.join("..data", top), os.path.join(target, top))
            for d, _, _ in os.walk(target):
                os.chmod(d, 0o755)
        elif "emptyDir" in v:
            os.makedirs(target)
            if fs_group is not None:
                os.chown(target, 0, fs_group)
                os.chmod(target, 0o2777)
            else:
                os.chmod(target, 0o777)
            empty[m["name"]] = target
        else:
            raise SystemExit(f"FAIL  volume {m['name']}: only configMap and emptyDir are modelled")
    return empty


def make_root(workdir, name, sts, ordinal, binary, dns):
    root = os.path.join(workdir, name)
    os.makedirs(os.path.join(root, "etc"))
    os.chmod(root, 0o755)
    shutil.copy2(binary, os.path.join(root, "peerconf"))
    os.chmod(os.path.join(root, "peerconf"), 0o755)
    service = sts["spec"]["serviceName"]
    with open(os.path.join(root, "etc/resolv.conf"), "w") as f:
        f.write(f"search {NAMESPACE}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
                f"nameserver {dns.addr}\noptions ndots:5\n")
    with open(os.path.join(root, "etc/hosts"), "w") as f:
        f.write(f"127.0.0.1\tlocalhost\n{pod_ip(ordinal)}\t{name}.{service}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}\t{name}\n")
    return root


def snapshot(dirs):
    out = {}
    for d in dirs:
        for entry in sorted(os.listdir(d)):
            st = os.lstat(os.path.join(d, entry))
            out[os.path.join(d, entry)] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return out


def run(root, argv, env, uid, gid, groups, timeout=60):
    cmd = ["env", "-i"] + [f"{k}={v}" for k, v in env.items()]
    cmd += ["chroot", f"--userspec={uid}:{gid}"]
    if groups:
        cmd.append("--groups=" + ",".join(map(str, groups)))
    cmd += [root] + argv
    started = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={"PATH": os.environ["PATH"]})
    return r, int((time.monotonic() - started) * 1000)


def can_read(path, uid, gid, groups):
    r = subprocess.run(["cat", path], user=uid, group=gid, extra_groups=groups, capture_output=True)
    return r.returncode == 0


def run_statefulsets(base, docs, binary, dns, workdir):
    for sts in by_kind(docs, "StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        inits = [c for c in pod.get("initContainers", []) if is_peerconf(c)]
        if not inits:
            continue
        init = inits[0]
        sname, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
        replicas = sts["spec"].get("replicas", 1)
        fs_group = pod.get("securityContext", {}).get("fsGroup")
        fqdns = [f"{sname}-{i}.{service}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}" for i in range(replicas + 1)]
        for i, fqdn in enumerate(fqdns):
            dns.records[fqdn] = pod_ip(i)
        members = fqdns[:replicas]
        uid, gid, groups = ids(init, pod, IMAGE_UID)
        for ordinal in range(replicas + 1):
            name = f"{sname}-{ordinal}"
            where = f"{base}: {name}"
            root = make_root(workdir, f"{base.replace('/', '_')}-{name}", sts, ordinal, binary, dns)
            empty = populate(root, init, pod, docs, fs_group)
            env = container_env(init, pod, name, ordinal, docs)
            argv = [expand(a, env) for a in (init.get("command") or IMAGE_ENTRYPOINT) + init.get("args", [])]
            if ordinal == 0:
                print(f"      {base}: {' '.join(argv)}  (uid {uid}, gid {gid}, groups {groups})")
            r, ms = run(root, argv, env, uid, gid, groups)
            written = snapshot(empty.values())
            if ordinal == replicas:
                # A pod beyond REPLICAS (what a bare `kubectl scale` creates) must refuse to start.
                check(r.returncode == 2 and not written and "replicas" in r.stderr.lower(),
                      f"{where} (beyond REPLICAS={replicas}): exit 2 naming the replica count, nothing written",
                      f"exit {r.returncode}, wrote {list(written)}: {r.stderr.strip()[-300:]}")
                continue
            if not check(r.returncode == 0, f"{where}: render exit 0 ({ms} ms)",
                         f"exit {r.returncode}: {r.stderr.strip()[-600:]}"):
                continue
            files = {p: open(p, encoding="utf-8").read() for p in written if not os.path.basename(p).startswith(".")}
            leftovers = [p for p in written if os.path.basename(p).startswith(".")]
            check(files and not leftovers, f"{where}: wrote {', '.join(os.path.relpath(p, root) for p in files)}",
                  f"files {list(files)}, leftovers {leftovers}")
            text = "".join(files.values())
            missing = [f for f in members if f not in text]
            check(not missing and "{{" not in text and "{%" not in text,
                  f"{where}: every peer FQDN rendered, no template syntax left", f"missing {missing}")
            mode = 0o640
            for a in argv:
                if a.startswith("--mode="):
                    mode = int(a.split("=", 1)[1], 8)
            for p in files:
                st = os.stat(p)
                check((st.st_mode & 0o7777) == mode and (fs_group is None or st.st_gid == fs_group),
                      f"{where}: {os.path.basename(p)} mode {mode:04o}, group {fs_group}",
                      f"mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}")
                if p.endswith(".json"):
                    try:
                        json.loads(files[p])
                    except ValueError as e:
                        bad(f"{where}: {os.path.basename(p)} is not valid JSON: {e}")
            # The dry run: same args, prints, writes nothing.
            before = snapshot(empty.values())
            d, ms = run(root, argv + ["--dry-run"], env, uid, gid, groups)
            missing = [f for f in members if f not in d.stdout]
            check(d.returncode == 0 and not missing and snapshot(empty.values()) == before,
                  f"{where}: --dry-run exit 0 ({ms} ms), prints every peer, writes nothing",
                  f"exit {d.returncode}, missing {missing}: {d.stderr.strip()[-400:]}")
            consumers(where, pod, empty, files, root, docs)


def consumers(where, pod, empty, files, root, docs):
    """Each main container finds the rendered files where it looks, and can read them."""
    used = set()
    volume_of = {}
    for vol, hostdir in empty.items():
        for p in files:
            if os.path.dirname(p) == hostdir:
                volume_of[p] = vol
    for c in pod["containers"]:
        uid, gid, groups = ids(c, pod, None)
        if uid is None:
            bad(f"{where}: container {c['name']} has no runAsUser; cannot check what it can read")
            continue
        words = c.get("command", []) + c.get("args", [])
        tokens = []
        for w in words:
            tokens += re.findall(r"/[^\s=,'\"]+", w)
        for m in c.get("volumeMounts", []):
            if m["name"] not in empty:
                continue
            hostdir = empty[m["name"]]
            mount = m["mountPath"].rstrip("/")
            if m.get("subPath"):
                p = os.path.join(hostdir, m["subPath"])
                if check(p in files, f"{where}: {c['name']} mounts {m['subPath']} at {mount} (subPath exists)",
                         "the file is missing: the kubelet would create an empty directory there"):
                    check(can_read(p, uid, gid, groups), f"{where}: {c['name']} (uid {uid}) can read {mount}")
                    used.add(p)
                continue
            for t in tokens:
                if t == mount:
                    used.update(p for p in files if volume_of.get(p) == m["name"])
                elif t.startswith(mount + "/"):
                    p = os.path.join(hostdir, t[len(mount) + 1 :])
                    if check(p in files, f"{where}: {c['name']} reads {t}, which peerconf wrote",
                             f"no such rendered file; rendered: {sorted(os.path.basename(f) for f in files)}"):
                        check(can_read(p, uid, gid, groups), f"{where}: {c['name']} (uid {uid}) can read {t}")
                        used.add(p)
    unused = sorted(os.path.basename(p) for p in files if p not in used)
    check(not unused, f"{where}: every rendered file is used by a container", f"unused: {unused}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", help="static peerconf binary (omit for policy checks only)")
    ap.add_argument("--version", required=True, help="crate version the image tag must match")
    ap.add_argument("builds", nargs="+", metavar="NAME=FILE")
    opts = ap.parse_args()
    built = []
    for spec in opts.builds:
        name, path = spec.split("=", 1)
        with open(path) as f:
            built.append((name, [d for d in yaml.safe_load_all(f) if d]))
    for name, docs in built:
        policy(name, docs, opts.version)
    if opts.binary:
        if os.geteuid() != 0:
            raise SystemExit("FAIL  running the init containers needs root (chroot, uid switching)")
        dns = DnsServer()
        print(f"      test DNS server on {dns.addr}:53; namespace {NAMESPACE}, cluster domain {CLUSTER_DOMAIN}")
        workdir = tempfile.mkdtemp(prefix="peerconf-pods-")
        os.chmod(workdir, 0o755)
        try:
            for name, docs in built:
                run_statefulsets(name, docs, opts.binary, dns, workdir)
        finally:
            dns.close()
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"      the test DNS server answered {dns.queries} queries")
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
