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

Run (as root: namespaces and uid switching), through the shared kubelet emulation of
tests/harness/pods.py, the one tests/e2e uses: for every ordinal, a pod is set up as the kubelet
would (every ConfigMap volume in the kubelet's `..data` symlink layout, every emptyDir
group-owned by fsGroup with the setgid bit, resolv.conf and /etc/hosts as the kubelet writes
them, the env it would give: downward API, configMapKeyRef, HOSTNAME, KUBERNETES_SERVICE_*), and
its init container runs verbatim (command or the Dockerfile's ENTRYPOINT, args with $(VAR)
expansion) in a `FROM scratch`-like sandbox holding only the binary at /peerconf, as the
container's uid/gid plus fsGroup. A dnsmasq serves the pods' names in the cluster domain, so
`--wait` policies run for real.
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
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness package

from harness import Failure  # noqa: E402
from harness.dnsmasq import start_on_first_free  # noqa: E402
from harness.manifests import by_kind, image_from_dockerfile, load_docs  # noqa: E402
from harness.pods import Node, Pod  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers  # noqa: E402
from harness.report import FAILURES, bad, ok  # noqa: E402

NAMESPACE = "prod"
CLUSTER_DOMAIN = "kube.example"  # not cluster.local: must come from resolv.conf's search list


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        bad(f"{msg}{': ' + detail if detail else ''}")
    return cond


def pod_ip(ordinal):
    return f"10.244.{ordinal // 200}.{ordinal % 200 + 10}"


# --------------------------------------------------------------------------------------------
# Policy


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
                          ("POD_IP", "status.podIP"), ("POD_IPS", "status.podIPs")]:
            got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            check(got == path, f"{where}: {var} from the downward API ({path})", f"got {got}")
        args = init.get("args", [])
        check(args[:1] == ["render"] and any(a.startswith("--wait") for a in args),
              f"{where}: init args are `render ...` with an explicit --wait", " ".join(args))
        sc = init.get("securityContext", {})
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        # 65532, or the datastore's own uid when a per-key --mode (KEY=MODE) writes a file that
        # uid must own (an Erlang cookie): docs/templates.md#per-key-modes-and-files-the-datastores-uid-must-own.
        init_uid = sc.get("runAsUser", psc.get("runAsUser"))
        main_uids = {(c.get("securityContext") or {}).get("runAsUser", psc.get("runAsUser")) for c in pod["containers"]}
        per_key_mode = any(re.match(r"--mode=[^=]+=", a) for a in args)
        hardened = {
            "runAsNonRoot": sc.get("runAsNonRoot") is True,
            "runAsUser 65532 (or the datastore's uid with a per-key --mode)": init_uid == 65532
            or (per_key_mode and main_uids == {init_uid} and init_uid not in (None, 0)),
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
# Running the init containers, through the harness's kubelet emulation


def snapshot(dirs):
    out = {}
    for d in dirs:
        for entry in sorted(os.listdir(d)):
            st = os.lstat(os.path.join(d, entry))
            out[os.path.join(d, entry)] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return out


def run_init(pod, args=None, timeout=60):
    """Run the pod's peerconf init to its end; (proc, milliseconds it took)."""
    proc = pod.start_init(args)
    if proc.wait(timeout) is None:
        proc.stop()
    return proc, int((proc.exited_at - proc.started) * 1000)


def secret_files(pod, init):
    """Each `--secret=NAME=PATH` of the init whose PATH is on a Secret volume, laid out as the
    kubelet writes a Secret's key: root-owned, group fsGroup, the volume's defaultMode. The value
    is a stand-in; the test pod emulation does not materialise Secret volumes itself."""
    secret_vols = {v["name"]: v["secret"] for v in pod.spec.get("volumes", []) if "secret" in v}
    for a in init.get("args", []):
        m = re.match(r"--secret=[^=]+=(/.+)", a)
        if not m:
            continue
        path = pod.host_path(m.group(1), init)
        for mnt in init.get("volumeMounts", []):
            if mnt["name"] in secret_vols and m.group(1).startswith(mnt["mountPath"].rstrip("/") + "/"):
                path.write_text("check-manifests-stand-in-secret")
                os.chown(path, 0, pod.fs_group or 0)
                os.chmod(path, secret_vols[mnt["name"]].get("defaultMode", 0o644))


def run_statefulsets(base, docs, node, dns):
    """Runs every ordinal's init of every StatefulSet; returns how many DNS queries they made."""
    queries = 0
    for sts in by_kind(docs, "StatefulSet"):
        spec = sts["spec"]["template"]["spec"]
        if not any(is_peerconf(c) for c in spec.get("initContainers", [])):
            continue
        replicas = sts["spec"].get("replicas", 1)
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        pods = [Pod(node, docs, sts, i, pod_ip(i), NAMESPACE) for i in range(replicas + 1)]
        for p in pods:
            dns.publish(p.fqdn, p.ip)
        members = [p.fqdn for p in pods[:replicas]]
        loops = iterates_members(docs, spec)
        mark = dns.log_mark()
        for pod in pods:
            where = f"{base}: {pod.name}"
            init = pod.init_container()
            uid, gid, groups = pod.ids(init)
            # The emptyDirs the init writes to: {volume: host dir}, and each one's mountPath.
            empty, mounted_at = {}, {}
            for m in init.get("volumeMounts", []):
                if any(v["name"] == m["name"] and "emptyDir" in v for v in spec.get("volumes", [])):
                    empty[m["name"]] = str(pod.volumes[m["name"]])
                    mounted_at[empty[m["name"]]] = m["mountPath"].strip("/")
            secret_files(pod, init)
            argv = pod.container_argv(init, pod.container_env(init))
            if pod.ordinal == 0:
                print(f"      {base}: {' '.join(argv)}  (uid {uid}, gid {gid}, groups {groups})")
            r, ms = run_init(pod)
            written = snapshot(empty.values())
            if pod.ordinal == replicas:
                # A pod beyond REPLICAS (what a bare `kubectl scale` creates) must refuse to start.
                check(r.returncode == 2 and not written and "replicas" in r.stderr().lower(),
                      f"{where} (beyond REPLICAS={replicas}): exit 2 naming the replica count, nothing written",
                      f"exit {r.returncode}, wrote {list(written)}: {r.stderr().strip()[-300:]}")
                continue
            if not check(r.returncode == 0, f"{where}: render exit 0 ({ms} ms)",
                         f"exit {r.returncode}: {r.stderr().strip()[-600:]}"):
                continue
            # peerconf's own temp and backup files (`.<name>.<random>.peerconf-tmp`/`-old`) are
            # leftovers; a dot key of the template (`.erlang.cookie`) is a rendered file.
            def is_temp(p):
                return ".peerconf-" in os.path.basename(p)
            files = {p: open(p, encoding="utf-8").read() for p in written if not is_temp(p)}
            leftovers = [p for p in written if is_temp(p)]
            shown = [os.path.join(mounted_at[os.path.dirname(p)], os.path.basename(p)) for p in files]
            check(files and not leftovers, f"{where}: wrote {', '.join(shown)}",
                  f"files {list(files)}, leftovers {leftovers}")
            text = "".join(files.values())
            missing, strays = peer_names(text, members, pods, loops)
            check(not missing and not strays and "{{" not in text and "{%" not in text,
                  f"{where}: {'every peer FQDN' if loops else 'only member FQDNs (no members loop)'} rendered, "
                  "no template syntax left", f"missing {missing}, not members {strays}")
            mode, key_modes = 0o640, {}
            for a in argv:
                if a.startswith("--mode="):
                    key, _, value = a[len("--mode="):].rpartition("=")
                    if key:
                        key_modes[key] = int(value, 8)
                    else:
                        mode = int(value, 8)
            for p in files:
                st = os.stat(p)
                want = key_modes.get(os.path.basename(p), mode)
                check((st.st_mode & 0o7777) == want and (fs_group is None or st.st_gid == fs_group),
                      f"{where}: {os.path.basename(p)} mode {want:04o}, group {fs_group}",
                      f"mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}")
                if p.endswith(".json"):
                    try:
                        json.loads(files[p])
                    except ValueError as e:
                        bad(f"{where}: {os.path.basename(p)} is not valid JSON: {e}")
            # The dry run: same args, prints, writes nothing.
            before = snapshot(empty.values())
            d, ms = run_init(pod, init.get("args", []) + ["--dry-run"])
            missing, strays = peer_names(d.stdout(), members, pods, loops)
            check(d.returncode == 0 and not missing and not strays and snapshot(empty.values()) == before,
                  f"{where}: --dry-run exit 0 ({ms} ms), prints {'every peer' if loops else 'only members'}, "
                  "writes nothing",
                  f"exit {d.returncode}, missing {missing}, not members {strays}: {d.stderr().strip()[-400:]}")
            consumers(where, pod, empty, files)
        queries += len(dns.queried_names(mark))
    return queries


def iterates_members(docs, pod_spec):
    """Does a template the peerconf init reads loop over `members`? Then its output must name
    every member. A template that names chosen members only (Redis: the primary, members[0])
    must name at least one, and no pod beyond REPLICAS."""
    init = next(c for c in pod_spec.get("initContainers", []) if is_peerconf(c))
    mounted = {m["name"] for m in init.get("volumeMounts", [])}
    cms = {v["configMap"]["name"] for v in pod_spec.get("volumes", []) if v["name"] in mounted and "configMap" in v}
    texts = [t for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] in cms for t in (d.get("data") or {}).values()]
    return any(re.search(r"\{%-?\s*for\s+\w+\s+in\s+members\b", t) for t in texts)


def peer_names(text, members, pods, loops):
    """(members the text should name but does not, pod FQDNs it names that are not members)."""
    strays = [p.fqdn for p in pods if p.fqdn not in members and p.fqdn in text]
    named = [f for f in members if f in text]
    missing = [f for f in members if f not in named] if loops else ([] if named else list(members))
    return missing, strays


def consumers(where, pod, empty, files):
    """Each main container finds the rendered files where it looks, and can read them."""
    used = set()
    volume_of = {}
    for vol, hostdir in empty.items():
        for p in files:
            if os.path.dirname(p) == hostdir:
                volume_of[p] = vol
    for c in pod.spec["containers"]:
        uid = pod.ids(c)[0]
        if uid is None:
            bad(f"{where}: container {c['name']} has no runAsUser; cannot check what it can read")
            continue
        # Paths in the env count too (RABBITMQ_CONFIG_FILE=/config/rabbitmq.conf, HOME=/config).
        words = c.get("command", []) + c.get("args", []) + [e.get("value", "") for e in c.get("env", [])]
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
                    check(pod.can_read(p, c), f"{where}: {c['name']} (uid {uid}) can read {mount}")
                    used.add(p)
                continue
            for t in tokens:
                if t == mount:
                    used.update(p for p in files if volume_of.get(p) == m["name"])
                elif t.startswith(mount + "/"):
                    p = os.path.join(hostdir, t[len(mount) + 1 :])
                    if check(p in files, f"{where}: {c['name']} reads {t}, which peerconf wrote",
                             f"no such rendered file; rendered: {sorted(os.path.basename(f) for f in files)}"):
                        check(pod.can_read(p, c), f"{where}: {c['name']} (uid {uid}) can read {t}")
                        used.add(p)
    unused = sorted(os.path.basename(p) for p in files if p not in used)
    check(not unused, f"{where}: every rendered file is used by a container", f"unused: {unused}")


def run_pods(built, binary):
    """Every peerconf init container of every build, in the harness's pod sandbox (FROM scratch:
    nothing but the binary at the ENTRYPOINT path), resolving through a dnsmasq for the zone."""
    install_stop_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="peerconf-pods-"))
    os.chmod(workdir, 0o755)
    (workdir / "logs").mkdir()
    sup = Supervisor(workdir / "logs", workdir / "pids")
    try:
        dns = start_on_first_free(sup, "dnsmasq", [f"127.88.0.{i}" for i in range(1, 50)], 53, workdir / "hosts",
                                  zone=CLUSTER_DOMAIN, query_log=workdir / "dnsmasq.log")
        print(f"      test DNS server on {dns.addr}:53 (dnsmasq); namespace {NAMESPACE}, "
              f"cluster domain {CLUSTER_DOMAIN}")
        image = workdir / "peerconf"  # a private copy: others may rebuild target/ meanwhile
        shutil.copy2(binary, image)
        os.chmod(image, 0o755)
        node = Node(workdir, sup, image, image_from_dockerfile(ROOT), dns.addr, domain=CLUSTER_DOMAIN,
                    root="scratch")
        queries = 0
        for name, docs in built:
            queries += run_statefulsets(name, docs, node, dns)
        print(f"      the test DNS server answered {queries} queries")
    finally:
        sup.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


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
            built.append((name, load_docs(f.read())))
    for name, docs in built:
        policy(name, docs, opts.version)
    if opts.binary:
        if os.geteuid() != 0:
            raise SystemExit("FAIL  running the init containers needs root (namespaces, uid switching)")
        try:
            run_pods(built, opts.binary)
        except Failure as e:
            bad(str(e))
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
