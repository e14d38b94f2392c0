#!/usr/bin/env python3
"""tests/k8s suite driver: the shipped manifests on a real control plane (see README.md).

Started by tests/k8s/run.sh:  suite.py --workdir DIR --bin PEERCONF --bins KUBE,ETCD,COREDNS [SCENARIO...]

Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and CoreDNS (controlplane.py)
and the node agent (agent.py), runs the scenarios through kubectl, each in a namespace labelled
PodSecurity `restricted` (enforce and warn), stops everything, and ends with
`k8s: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the harness package
sys.path.insert(0, str(HERE))

from harness import Failure, check, images  # noqa: E402
from harness.dns import query  # noqa: E402
from harness.manifests import image_from_dockerfile  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers, run, wait_until  # noqa: E402

import agent as agentmod  # noqa: E402
from controlplane import ControlPlane, stop_everything  # noqa: E402

T0 = time.monotonic()
FIGURES = []


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def figure(msg):
    FIGURES.append(msg)
    log(f"FIGURE {msg}")


class K:
    """What a scenario gets: the control plane, the agent, kubectl, the repository."""

    def __init__(self, cp: ControlPlane, agent, repo: Path, workdir: Path):
        self.cp, self.agent, self.repo, self.workdir = cp, agent, repo, workdir
        self.api = cp.api

    def kubectl(self, *args, **kw):
        return self.cp.kubectl(*args, **kw)

    def namespace(self, name):
        """A fresh namespace with PodSecurity restricted enforced (and warned, so kubectl says so)."""
        self.kubectl("create", "namespace", name)
        self.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
                     "pod-security.kubernetes.io/enforce-version=latest",
                     "pod-security.kubernetes.io/warn=restricted")
        check(wait_until(lambda: self.api.maybe_get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), 30, 0.2),
              f"no default ServiceAccount in {name} after 30 s")
        return name

    def apply_k(self, path, ns):
        r = self.kubectl("apply", "-k", path, "-n", ns, timeout=120, check_rc=False)
        check(r.returncode == 0, f"kubectl apply -k {path}: exit {r.returncode}: {r.stderr.strip()}")
        check("Warning" not in r.stderr, f"kubectl apply -k {path} warned: {r.stderr.strip()}")
        return r.stdout

    def pods(self, ns, selector=None):
        q = f"?labelSelector={selector}" if selector else ""
        return {p["metadata"]["name"]: p for p in self.api.get(f"/api/v1/namespaces/{ns}/pods{q}")["items"]}

    def pod(self, ns, name):
        return self.api.maybe_get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def runner(self, ns, name):
        """The agent's runner of the live pod ns/name (by the API object's uid)."""
        p = self.pod(ns, name)
        check(p is not None, f"no pod {ns}/{name}")
        r = self.agent.runners.get(p["metadata"]["uid"])
        check(r is not None and r.pod is not None, f"the agent does not run {ns}/{name} (yet)")
        return r

    def wait_pods(self, ns, names, want, timeout, what=None):
        """Wait until each named pod satisfies want(pod object); the seconds it took."""
        t = time.monotonic()

        def ok():
            self.agent_ok()
            ps = self.pods(ns)
            return all(n in ps and want(ps[n]) for n in names)

        if not wait_until(ok, timeout, 0.25):
            ps = self.pods(ns)
            raise Failure(f"{what or 'pods'} not reached within {timeout} s: " + "; ".join(
                f"{n}: {summary(ps.get(n))}" for n in names))
        return round(time.monotonic() - t, 1)

    def agent_ok(self):
        check(not self.agent.errors, "node agent error:\n" + "\n".join(self.agent.errors))

    def dns(self, name):
        """CoreDNS's answer to one A question, asked from the node side of the bridge."""
        try:
            return query((self.cp.dns_ip, 53), name, timeout=1.0, netns=self.cp.node_ns)
        except OSError as e:
            return f"<{e}>"

    def rendered(self, ns, name, container_path):
        r = self.runner(ns, name)
        path = r.pod.host_path(container_path)
        check(path.exists(), f"{ns}/{name}: {container_path} was not written")
        return path.read_text()

    def sts(self, ns, name):
        return self.api.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")

    def delete_ns(self, ns):
        self.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", timeout=150, check_rc=False)


def summary(p):
    if p is None:
        return "absent"
    st = p.get("status", {})
    ready = [c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"]
    inits = [(c["name"], list(c.get("state", {}))[:1], c.get("restartCount")) for c in st.get("initContainerStatuses", [])]
    return f"phase={st.get('phase')} ip={st.get('podIP')} ready={ready} inits={inits}"


def running(p):
    st = p.get("status", {})
    return st.get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")


def ready(p):
    return running(p) and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def overlay(k: K, base: Path, name, edit=None, patches=None):
    """A kustomize directory in the work dir: a copy of `base` edited by `edit(text)` on its
    kustomization.yaml (the user's own edit, e.g. the replica count), or, with `patches`, an
    overlay of `base` with those JSON6902 patches. The repository's files are never changed."""
    d = k.workdir / "overlays" / name
    if patches is None:
        shutil.copytree(base, d)
        kfile = d / "kustomization.yaml"
        kfile.write_text(edit(kfile.read_text()))
    else:
        d.mkdir(parents=True)
        (d / "kustomization.yaml").write_text(json.dumps({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(base, d)],
            "patches": [{"target": t, "patch": json.dumps(ops)} for t, ops in patches]}))
    return d


# -- scenarios ------------------------------------------------------------------------------------

def s_admission(k: K):
    """kubectl apply -k of manifests/ and every example, unchanged, admitted in a restricted namespace.

    A server-side dry run goes through defaulting, validation and every admission plugin
    (PodSecurity warns about a workload's pod template in a namespace with `warn=restricted`);
    each object must be accepted and kubectl must print no warning."""
    bases = [k.repo / "manifests"] + sorted(p for p in (k.repo / "manifests" / "examples").iterdir() if p.is_dir())
    ns = k.namespace("k8s-admission")
    for b in bases:
        r = k.kubectl("apply", "-k", b, "-n", ns, "--dry-run=server", timeout=120, check_rc=False)
        check(r.returncode == 0, f"{b.relative_to(k.repo)}: refused: {r.stderr.strip()}")
        check("Warning" not in r.stderr, f"{b.relative_to(k.repo)}: warnings: {r.stderr.strip()}")
        objs = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
        log(f"  {b.relative_to(k.repo)}: {len(objs)} objects admitted (server dry run): {', '.join(objs)}")
        check(any(o.startswith("statefulset.apps/") for o in objs), f"{b}: no StatefulSet in {objs}")
    server = json.loads(k.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    figure(f"admission: {len(bases)} kustomizations admitted unchanged by kube-apiserver {server} "
           "under PodSecurity restricted, no warning")
    k.delete_ns(ns)


def consul_config(k, ns, name):
    return json.loads(k.rendered(ns, name, "/config/consul.json"))


def check_consul_config(k, ns, name, replicas):
    pod = k.pod(ns, name)
    cfg = consul_config(k, ns, name)
    ip = pod["status"]["podIP"]
    want_join = [f"consul-{i}.consul.{ns}.svc.cluster.local" for i in range(replicas)]
    check(cfg.get("bootstrap_expect") == replicas, f"{name}: bootstrap_expect {cfg.get('bootstrap_expect')}, not {replicas}")
    check(sorted(cfg.get("retry_join", [])) == want_join, f"{name}: retry_join {cfg.get('retry_join')}")
    check(cfg.get("bind_addr") == ip and cfg.get("advertise_addr") == ip,
          f"{name}: bind/advertise {cfg.get('bind_addr')}/{cfg.get('advertise_addr')}, pod IP {ip}")
    return cfg


def consul_cli(k, ns, pod, *args, timeout=30):
    """The consul CLI (the pods' own binary) run in the pod's network namespace against the pod's
    IP, as `kubectl exec POD -c consul -- consul ...` would reach the agent."""
    ip = k.pod(ns, pod)["status"]["podIP"]
    return run([*k.runner(ns, pod).netns.exec_prefix(), images.consul_binary(), *args], timeout=timeout,
               check_rc=False, env={"PATH": "/usr/bin:/bin", "CONSUL_HTTP_ADDR": f"http://{ip}:8500"})


def consul_members(k, ns, pod):
    """`consul members` on pod: {node: (ip, status, type)}, or the error text."""
    r = consul_cli(k, ns, pod, "members")
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 4:
            rows[f[0]] = (f[1].rsplit(":", 1)[0], f[2], f[3])
    return rows


def raft_peers(k, ns, pod):
    """`consul operator raft list-peers` on pod: {node: (ip, state, voter)}, or the error text."""
    r = consul_cli(k, ns, pod, "operator", "raft", "list-peers")
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 5:
            rows[f[0]] = (f[2].rsplit(":", 1)[0], f[3], f[4])
    return rows


def consul_cluster(k, ns, names):
    """'' when every pod's `consul members` lists exactly `names`, alive servers at their pod IPs,
    and every pod's raft peer set is those servers, all voters, one leader; else what differs."""
    ips = {n: k.pod(ns, n)["status"]["podIP"] for n in names}
    want_members = {n: (ip, "alive", "server") for n, ip in ips.items()}
    for n in names:
        m = consul_members(k, ns, n)
        if m != want_members:
            return f"{n}: members {m}, want {want_members}"
        peers = raft_peers(k, ns, n)
        if not isinstance(peers, dict) or {p: v[0] for p, v in peers.items()} != ips \
                or any(v[2] != "true" for v in peers.values()) \
                or sorted(v[1] for v in peers.values()) != ["follower"] * (len(names) - 1) + ["leader"]:
            return f"{n}: raft peers {peers}"
    return ""


def wait_consul_cluster(k, ns, names, timeout, what):
    t = time.monotonic()
    last = ["not checked"]

    def ok():
        k.agent_ok()
        last[0] = consul_cluster(k, ns, names)
        return not last[0]

    check(wait_until(ok, timeout, 1.0), f"{what} not reached within {timeout} s: {last[0]}")
    return round(time.monotonic() - t, 1)


def describe_cluster(k, ns, names):
    peers = raft_peers(k, ns, names[0])
    leader = [p for p, v in peers.items() if v[1] == "leader"]
    at = ", ".join(f"{n} {k.pod(ns, n)['status']['podIP']}" for n in names)
    return (f"`consul members` on each of {len(names)} pods: {len(names)} alive servers at the pod IPs "
            f"({at}); raft peers {len(peers)}, "
            f"all voters, leader {leader[0]}")


def kv_get(k, ns, pod, key):
    r = consul_cli(k, ns, pod, "kv", "get", key)
    return r.stdout.strip() if r.returncode == 0 else f"<exit {r.returncode}: {r.stderr.strip()[-200:]}>"


def s_consul(k: K):
    """The Consul walkthrough on real Consul 1.14.11: 3 servers, delete consul-1, bare scale, documented scale 3 -> 5."""
    ns = k.namespace("k8s-consul")
    names = [f"consul-{i}" for i in range(3)]
    corefile = f"Corefile {k.cp.corefile_name}, no record delay"
    t0 = time.monotonic()
    k.apply_k(k.repo / "manifests", ns)
    t_run = k.wait_pods(ns, names, running, 120, "3 consul pods Running")
    for n in names:
        check_consul_config(k, ns, n, 3)
        a = k.dns(f"{n}.consul.{ns}.svc.cluster.local")
        check(getattr(a, "addrs", None) == [k.pod(ns, n)["status"]["podIP"]], f"CoreDNS answers {a} for {n}")
    k.wait_pods(ns, names, ready, 180, "3 consul pods Ready (a leader known)")
    t_ready = round(time.monotonic() - t0, 1)
    wait_consul_cluster(k, ns, names, 60, "3 alive servers and 3 raft voters")
    t_cluster = round(time.monotonic() - t0, 1)
    pvcs = k.api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]
    check(sorted((c["metadata"]["name"], c["status"]["phase"]) for c in pvcs) ==
          [(f"data-consul-{i}", "Bound") for i in range(3)], f"PVCs: {[(c['metadata']['name'], c['status']['phase']) for c in pvcs]}")
    put = consul_cli(k, ns, "consul-0", "kv", "put", "k8s-key", "v1")
    check(put.returncode == 0 and "Success" in put.stdout, f"consul kv put on consul-0: {put.stdout} {put.stderr}")
    check(kv_get(k, ns, "consul-2", "k8s-key") == "v1", f"consul kv get on consul-2: {kv_get(k, ns, 'consul-2', 'k8s-key')}")
    figure(f"consul: apply -k -> 3 pods Running with rendered consul.json (bootstrap_expect 3, own IP) {t_run} s after "
           f"apply, all Ready (leader known) {t_ready} s, {describe_cluster(k, ns, names)} {t_cluster} s after apply; "
           f"`consul kv put k8s-key v1` on consul-0, `kv get` on consul-2: v1; {corefile}")

    # -- the template ConfigMap changed in place: the volumes follow, the rendered configs do not ----
    cm_name = next(v["configMap"]["name"] for v in k.sts(ns, "consul")["spec"]["template"]["spec"]["volumes"]
                   if "configMap" in v)
    applied = json.loads(k.api.get(f"/api/v1/namespaces/{ns}/configmaps/{cm_name}")["metadata"]["annotations"]
                         ["kubectl.kubernetes.io/last-applied-configuration"])
    original = applied["data"]["consul.json"]
    edited = original.replace('"log_level": "INFO",', '"log_level": "INFO",\n  "node_meta": {"template": "edited"},')
    check(edited != original, "the template has no log_level line to edit")
    applied["data"]["consul.json"] = edited
    (k.workdir / "consul-template-edited.json").write_text(json.dumps(applied))
    rendered_before = {n: k.rendered(ns, n, "/config/consul.json") for n in names}
    data_before = {n: os.readlink(k.runner(ns, n).pod.host_path("/readonly/..data")) for n in names}
    t = time.monotonic()
    r = k.kubectl("apply", "-f", k.workdir / "consul-template-edited.json", "-n", ns)
    check(f"configmap/{cm_name} configured" in r.stdout, f"kubectl apply of the edited ConfigMap: {r.stdout}")
    check(wait_until(lambda: all(k.rendered(ns, n, "/readonly/consul.json") == edited for n in names), 30, 0.2),
          "the pods' /readonly/consul.json did not change within 30 s of the ConfigMap's update")
    t_swap = round(time.monotonic() - t, 1)
    for n in names:
        vol = k.runner(ns, n).pod.host_path("/readonly")
        now_data = os.readlink(vol / "..data")
        check(now_data != data_before[n] and not (vol / data_before[n]).exists() and not os.path.lexists(vol / "..data_tmp"),
              f"{n}: ..data {data_before[n]} -> {now_data}; volume holds {sorted(os.listdir(vol))}")
    time.sleep(2 * agentmod.CONFIGMAP_SYNC_S)
    check({n: k.rendered(ns, n, "/config/consul.json") for n in names} == rendered_before,
          "a rendered consul.json changed without its pod being re-created")
    metas = consul_cli(k, ns, "consul-0", "catalog", "nodes", "-detailed").stdout
    check("template=edited" not in metas, f"a running Consul has the edited node_meta:\n{metas}")
    figure(f"consul: `kubectl apply` of the template ConfigMap {cm_name} with a node_meta line added: every pod's "
           f"/readonly/consul.json showed it {t_swap} s later (the agent's AtomicWriter-style swap: new timestamped dir, "
           f"`..data_tmp` renamed over `..data`, old dir removed; it polls every {agentmod.CONFIGMAP_SYNC_S:g} s); the "
           f"rendered /config/consul.json of consul-0..2 unchanged {2 * agentmod.CONFIGMAP_SYNC_S:g} s later and no "
           "Consul node has the meta: the init container ran once, before the change")

    # -- delete consul-1: same name, new IP, rendered again (from the edited template), rejoins ------
    old = k.pod(ns, "consul-1")
    old_uid, old_ip = old["metadata"]["uid"], old["status"]["podIP"]
    marker = k.runner(ns, "consul-1").pod.host_path("/config/consul.json")
    t = time.monotonic()
    k.kubectl("delete", "pod", "consul-1", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    t_gone = round(time.monotonic() - t, 1)
    leave = [line for line in k.agent.log_lines if f"{ns}/consul-1: preStop" in line]
    k.wait_pods(ns, ["consul-1"], lambda p: ready(p) and p["metadata"]["uid"] != old_uid, 120,
                "consul-1 re-created and Ready")
    t_back = round(time.monotonic() - t, 1)
    new = k.pod(ns, "consul-1")
    check(new["status"]["podIP"] != old_ip, f"consul-1 kept its IP {old_ip}")
    check(k.runner(ns, "consul-1").pod.host_path("/config/consul.json") != marker, "consul-1 kept its old emptyDir")
    check_consul_config(k, ns, "consul-1", 3)
    wait_consul_cluster(k, ns, names, 90, "consul-1 alive at its new IP and 3 raft voters")
    t_rejoined = round(time.monotonic() - t, 1)
    check(kv_get(k, ns, "consul-1", "k8s-key") == "v1", f"kv get through consul-1: {kv_get(k, ns, 'consul-1', 'k8s-key')}")
    check(consul_config(k, ns, "consul-1").get("node_meta") == {"template": "edited"},
          f"the re-created consul-1 did not render the edited template: {consul_config(k, ns, 'consul-1')}")
    check(all(k.rendered(ns, n, "/config/consul.json") == rendered_before[n] for n in ("consul-0", "consul-2")),
          "consul-0/2's rendered configs changed")
    metas = {line.split()[0]: "template=edited" in line
             for line in consul_cli(k, ns, "consul-0", "catalog", "nodes", "-detailed").stdout.splitlines()[1:] if line.strip()}
    check(metas == {"consul-0": False, "consul-1": True, "consul-2": False}, f"node meta template=edited by node: {metas}")
    figure(f"consul: kubectl delete pod consul-1 returned in {t_gone} s (preStop: {leave[-1].split('preStop ', 1)[-1][:120] if leave else 'not run'}); "
           f"re-created as consul-1 {old_ip} -> {new['status']['podIP']}, consul.json rendered for the new IP, Ready "
           f"{t_back} s after the delete; `consul members` on every pod shows consul-1 alive at {new['status']['podIP']} "
           f"and raft has 3 voters {t_rejoined} s after the delete; `kv get k8s-key` through consul-1: v1; claim data-consul-1 kept; "
           "only the re-created consul-1 rendered the edited template (`consul catalog nodes -detailed`: template=edited "
           "on consul-1 alone)")

    # -- a bare kubectl scale: REPLICAS stays 3 -------------------------------------------------
    t = time.monotonic()
    k.kubectl("scale", "statefulset", "consul", "-n", ns, "--replicas=5")
    k.wait_pods(ns, ["consul-3", "consul-4"], init_exit(2), 90, "consul-3/4 init exiting 2 after a bare scale")
    took = round(time.monotonic() - t, 1)
    log_line = init_runs(k, ns, "consul-3")[0].stderr().strip().splitlines()[-1:]
    for n in names:
        check(consul_config(k, ns, n)["bootstrap_expect"] == 3, f"{n}: config changed by a bare scale")
    env = {e["name"]: e.get("value") for e in k.sts(ns, "consul")["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    check(not consul_cluster(k, ns, names), f"the 3 servers after a bare scale: {consul_cluster(k, ns, names)}")
    figure(f"consul: bare `kubectl scale statefulset consul --replicas=5`: spec.replicas 5, REPLICAS {env['REPLICAS']}; "
           f"consul-3 and consul-4 init exit 2 within {took} s ({log_line}), then back-off (CrashLoopBackOff); "
           "consul-0..2 keep bootstrap_expect 3 and `consul members` still lists 3 alive servers: no pod ever runs "
           "with a member list that disagrees with its peers")
    k.kubectl("scale", "statefulset", "consul", "-n", ns, "--replicas=3")
    check(wait_until(lambda: not ({"consul-3", "consul-4"} & set(k.pods(ns))), 60, 0.25), "consul-3/4 not removed after scaling back")

    # -- the documented way: count 5 in kustomization.yaml, kubectl apply -k ------------------
    five = overlay(k, k.repo / "manifests", "consul-5", edit=lambda s: s.replace("count: 3", "count: 5"))
    all5 = [f"consul-{i}" for i in range(5)]
    uids = {n: k.pod(ns, n)["metadata"]["uid"] for n in names}
    t = time.monotonic()
    k.apply_k(five, ns)
    env = {e["name"]: e.get("value") for e in k.sts(ns, "consul")["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    check(env["REPLICAS"] == "5", f"REPLICAS is {env['REPLICAS']} after apply -k with count 5")
    replaced, new_ready, t_new = {}, {}, None

    def rolled():
        k.agent_ok()
        ps = k.pods(ns)
        nonlocal t_new
        now = round(time.monotonic() - t, 1)
        if t_new is None and all(n in ps and ready(ps[n]) for n in ("consul-3", "consul-4")):
            t_new = now
        for n in names:
            p = ps.get(n)
            if n not in replaced and (p is None or p["metadata"]["uid"] != uids[n] or p["metadata"].get("deletionTimestamp")):
                replaced[n] = now
            if n in replaced and n not in new_ready and p is not None and p["metadata"]["uid"] != uids[n] and ready(p):
                new_ready[n] = now
        st = k.sts(ns, "consul")["status"]
        return (st.get("updatedReplicas") == 5 and st.get("readyReplicas") == 5
                and st.get("currentRevision") == st.get("updateRevision") and len(new_ready) == 3)

    check(wait_until(rolled, 420, 0.5), f"the rollout to 5 did not finish within 420 s: replaced {replaced}, "
          f"Ready again {new_ready}; pods {[(n, summary(p)) for n, p in k.pods(ns).items()]}")
    t_rolled = round(time.monotonic() - t, 1)
    order = sorted(replaced, key=replaced.get)
    check(order == ["consul-2", "consul-1", "consul-0"], f"rollout order {order} ({replaced})")
    for n in all5:
        check_consul_config(k, ns, n, 5)
        check("node_meta" not in consul_config(k, ns, n), f"{n} rendered node_meta after apply -k restored the template")
    wait_consul_cluster(k, ns, all5, 120, "5 alive servers and 5 raft voters")
    t_five = round(time.monotonic() - t, 1)
    check(kv_get(k, ns, "consul-4", "k8s-key") == "v1", f"kv get on consul-4: {kv_get(k, ns, 'consul-4', 'k8s-key')}")
    check(kv_get(k, ns, "consul-0", "k8s-key") == "v1", f"kv get on consul-0: {kv_get(k, ns, 'consul-0', 'k8s-key')}")
    figure(f"consul: count 5 + kubectl apply -k: REPLICAS 5; consul-3/4 Ready {t_new} s after apply; the controller "
           f"rolled {' -> '.join(order)} (replacement began at {', '.join(f'{n} {replaced[n]} s' for n in order)}; "
           f"Ready again at {', '.join(f'{n} {new_ready[n]} s' for n in order)}); rollout complete {t_rolled} s after "
           f"apply; all 5 consul.json bootstrap_expect 5 with 5 retry_join names; {describe_cluster(k, ns, all5)} "
           f"{t_five} s after apply; `kv get k8s-key` on consul-4 and consul-0: v1; apply -k also put the ConfigMap's "
           f"consul.json back (same generated name), so no pod renders the node_meta edit any more; {corefile}")
    t = time.monotonic()
    k.delete_ns(ns)
    check(not k.pods(ns), f"pods left after deleting {ns}: {sorted(k.pods(ns))}")
    figure(f"consul: kubectl delete namespace (5 servers, preStop `consul leave` each) took {round(time.monotonic() - t, 1)} s")


def s_etcd(k: K):
    """The etcd example forms a real cluster (Debian etcd), and a pod re-created with a new IP rejoins it."""
    ns = k.namespace("k8s-etcd")
    names = [f"etcd-{i}" for i in range(3)]
    t0 = time.monotonic()
    k.apply_k(k.repo / "manifests" / "examples" / "etcd", ns)
    took = k.wait_pods(ns, names, ready, 180, "3 etcd pods Ready")
    members = etcd_members(k, ns)
    check(len(members) == 3, f"etcd member list: {members}")
    figure(f"etcd: apply -k -> 3 members, all Ready (readiness /health) {round(time.monotonic() - t0, 1)} s "
           f"after apply (wait {took} s); Corefile {k.cp.corefile_name}")
    put = etcdctl(k, ns, "etcd-0", "put", "k8s-key", "v1")
    check(put.returncode == 0, f"etcdctl put: {put.stderr}")
    for corefile in ("kubeadm", "plain"):
        if corefile != k.cp.corefile_name:
            k.cp.start_coredns(corefile)
        old = k.pod(ns, "etcd-1")
        t = time.monotonic()
        k.kubectl("delete", "pod", "etcd-1", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
        took = k.wait_pods(ns, ["etcd-1"], lambda p: ready(p) and p["metadata"]["uid"] != old["metadata"]["uid"], 180,
                           "etcd-1 re-created and Ready")
        new = k.pod(ns, "etcd-1")
        check(new["status"]["podIP"] != old["status"]["podIP"], "etcd-1 kept its IP")
        got = etcdctl(k, ns, "etcd-1", "get", "k8s-key", "--print-value-only")
        check(got.returncode == 0 and got.stdout.strip() == "v1", f"etcd-1 after re-creation: {got.stdout!r} {got.stderr!r}")
        members = etcd_members(k, ns)
        check(len(members) == 3, f"members after re-creation: {members}")
        figure(f"etcd: delete etcd-1 ({old['status']['podIP']} -> {new['status']['podIP']}): Ready again and serving "
               f"the key {round(time.monotonic() - t, 1)} s after the delete; Corefile {corefile}")
    if k.cp.corefile_name != "kubeadm":
        k.cp.start_coredns("kubeadm")
    k.delete_ns(ns)


def etcdctl(k, ns, pod, *args):
    ip = k.pod(ns, pod)["status"]["podIP"]
    return run([*k.cp.node_ns.exec_prefix(), "etcdctl", f"--endpoints=http://{ip}:2379", "--command-timeout=5s", *args],
               timeout=20, check_rc=False, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})


def etcd_members(k, ns):
    r = etcdctl(k, ns, "etcd-0", "member", "list", "-w", "json")
    check(r.returncode == 0, f"etcdctl member list: {r.stderr}")
    return [m.get("name") for m in json.loads(r.stdout).get("members", [])]


def s_deadlock(k: K):
    """OrderedReady and publishNotReadyAddresses: false deadlock the etcd example; the shipped one does not."""
    base = k.repo / "manifests" / "examples" / "etcd"
    sts_t = {"group": "apps", "version": "v1", "kind": "StatefulSet", "name": "etcd"}
    svc_t = {"version": "v1", "kind": "Service", "name": "etcd"}
    variants = [
        ("ordered", "OrderedReady + publishNotReadyAddresses true",
         [(sts_t, [{"op": "replace", "path": "/spec/podManagementPolicy", "value": "OrderedReady"}])]),
        ("notready", "Parallel + publishNotReadyAddresses false",
         [(svc_t, [{"op": "replace", "path": "/spec/publishNotReadyAddresses", "value": False}])]),
    ]
    watch = 45
    for key, title, patches in variants:
        ns = k.namespace(f"k8s-deadlock-{key}")
        k.apply_k(overlay(k, base, f"etcd-{key}", patches=patches), ns)
        time.sleep(watch)
        ps = k.pods(ns)
        records = {n: k.dns(f"{n}.etcd.{ns}.svc.cluster.local") for n in ps}
        states = {n: summary(p) for n, p in ps.items()}
        check(not any(ready(p) for p in ps.values()), f"{title}: a pod became Ready: {states}")
        if key == "ordered":
            check(sorted(ps) == ["etcd-0"], f"{title}: pods {sorted(ps)} exist, expected etcd-0 alone")
        else:
            check(sorted(ps) == ["etcd-0", "etcd-1", "etcd-2"], f"{title}: pods {sorted(ps)}")
            check(all(getattr(r, "rcode", None) == 3 for r in records.values()), f"{title}: records {records}")
        in_init = sorted(n for n, p in ps.items() if not any(
            "terminated" in c.get("state", {}) and c["state"]["terminated"].get("exitCode") == 0
            for c in p.get("status", {}).get("initContainerStatuses", [])))
        hints = [line for n in ps for line in k.runner(ns, n).pod.procs[0].stderr().splitlines() if "hint" in line.lower()]
        figure(f"deadlock ({title}): after {watch} s pods {sorted(ps)}, none Ready, still in their init container: {in_init}; "
               f"CoreDNS answers {', '.join(f'{n}: ' + (str(r.addrs) if hasattr(r, 'addrs') and r.rcode == 0 else 'NXDOMAIN' if getattr(r, 'rcode', None) == 3 else str(r)) for n, r in records.items())}; "
               f"peerconf hint lines: {len(hints)}{' e.g. ' + hints[0][:160] if hints else ''}")
        k.delete_ns(ns)


def s_liveness(k: K):
    """A liveness probe (an overlay on the NATS example) restarts a hung nats-server: restartCount, lastState."""
    ns = k.namespace("k8s-liveness")
    names = [f"nats-{i}" for i in range(3)]
    probe = {"httpGet": {"path": "/healthz", "port": "monitor"}, "initialDelaySeconds": 2, "periodSeconds": 2,
             "timeoutSeconds": 1, "failureThreshold": 3, "terminationGracePeriodSeconds": 3}
    sts_t = {"group": "apps", "version": "v1", "kind": "StatefulSet", "name": "nats"}
    d = overlay(k, k.repo / "manifests" / "examples" / "nats", "nats-liveness",
                patches=[(sts_t, [{"op": "add", "path": "/spec/template/spec/containers/0/livenessProbe", "value": probe}])])
    k.apply_k(d, ns)
    k.wait_pods(ns, names, ready, 120, "nats pods Ready with a liveness probe")
    # Healthy: the probe runs and passes, nothing restarts.
    time.sleep(4 * probe["periodSeconds"] * probe["failureThreshold"] / 3 + 1)
    runs = {n: list(k.runner(ns, n).probes["nats"].runs["l"]) for n in names}
    check(all(ok >= 3 and bad == 0 for ok, bad in runs.values()), f"liveness runs [passed, failed] while healthy: {runs}")
    restarts = {n: k.pod(ns, n)["status"]["containerStatuses"][0]["restartCount"] for n in names}
    check(restarts == {n: 0 for n in names}, f"restarts while healthy: {restarts}")
    # Hang nats-server in nats-1 (SIGSTOP): it keeps its port, so TCP connects, but /healthz never answers.
    proc = k.runner(ns, "nats-1").main_procs["nats"]
    t = time.monotonic()
    os.kill(proc.pid, signal.SIGSTOP)

    def restarted(p):
        st = p["status"]["containerStatuses"][0]
        return st["restartCount"] == 1 and "terminated" in st.get("lastState", {})
    took = k.wait_pods(ns, ["nats-1"], restarted, 60, "nats-1 restarted by its liveness probe")
    st = k.pod(ns, "nats-1")["status"]["containerStatuses"][0]
    term = st["lastState"]["terminated"]
    check(term["exitCode"] == 137, f"nats-1's last state {term}: a stopped process ignores SIGTERM, so 137 (SIGKILL) was expected")
    check(proc.returncode == -signal.SIGKILL, f"the hung nats-server exited {proc.returncode}")
    k.wait_pods(ns, ["nats-1"], ready, 60, "nats-1 Ready again")
    back = round(time.monotonic() - t, 1)
    ip = k.pod(ns, "nats-1")["status"]["podIP"]

    def routes():
        try:
            raw = k.cp.node_ns.request(ip, 8222, f"GET /routez HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode(), 3.0)
            return json.loads(raw.partition("\r\n\r\n")[2]).get("num_routes", 0) >= 2
        except (OSError, ValueError):
            return False
    check(wait_until(routes, 30, 0.5), "the restarted nats-1 has no routes to both peers")
    others = {n: k.pod(ns, n)["status"]["containerStatuses"][0]["restartCount"] for n in ("nats-0", "nats-2")}
    check(others == {"nats-0": 0, "nats-2": 0}, f"other pods restarted: {others}")
    check(k.pod(ns, "nats-1")["status"]["podIP"] == ip and k.pod(ns, "nats-1")["metadata"]["uid"] == k.runner(ns, "nats-1").uid,
          "nats-1 was re-created instead of restarted in place")
    figure(f"liveness: NATS example + livenessProbe httpGet /healthz (period {probe['periodSeconds']} s, failureThreshold "
           f"{probe['failureThreshold']}, probe terminationGracePeriodSeconds {probe['terminationGracePeriodSeconds']}): "
           f"healthy, {min(ok for ok, _ in runs.values())}+ passing runs per pod and no restart; nats-server in nats-1 "
           f"stopped (SIGSTOP) -> killed and restarted in place {took} s later (restartCount 1, lastState.terminated "
           f"exitCode {term['exitCode']} reason {term['reason']}; expected about failureThreshold x periodSeconds + grace = "
           f"{probe['failureThreshold'] * probe['periodSeconds'] + probe['terminationGracePeriodSeconds']} s); Ready again "
           f"{back} s after the stop, same pod and IP, 2 routes again; nats-0/2 restartCount 0")
    k.delete_ns(ns)


def simple_cluster(example, names, check_fn=None):
    def s(k: K):
        ns = k.namespace(f"k8s-{example}")
        t0 = time.monotonic()
        k.apply_k(k.repo / "manifests" / "examples" / example, ns)
        took = k.wait_pods(ns, names, ready, 240, f"{example} pods Ready")
        extra = check_fn(k, ns) if check_fn else ""
        figure(f"{example}: apply -k -> {len(names)} pods Ready {round(time.monotonic() - t0, 1)} s after apply "
               f"(wait {took} s){extra}; Corefile {k.cp.corefile_name}")
        k.delete_ns(ns)
    s.__doc__ = f"The {example} example: every pod Ready on the real control plane."
    return s


def zk_check(k, ns):
    modes = {}
    for n in ("zookeeper-0", "zookeeper-1", "zookeeper-2"):
        ip = k.pod(ns, n)["status"]["podIP"]
        try:
            out = k.cp.node_ns.request(ip, 2181, b"srvr", 3.0)
        except OSError as e:
            out = str(e)
        m = re.search(r"Mode: (\w+)", out)
        modes[n] = m.group(1) if m else out[:80]
    check(sorted(modes.values()) == ["follower", "follower", "leader"], f"zookeeper modes {modes}")
    return f", ensemble {modes}"


def nats_check(k, ns):
    ip = k.pod(ns, "nats-0")["status"]["podIP"]
    raw = k.cp.node_ns.request(ip, 8222, f"GET /routez HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode(), 3.0)
    body = json.loads(raw.partition("\r\n\r\n")[2])
    check(body.get("num_routes", 0) >= 2, f"nats-0 routes: {body.get('num_routes')}")
    return f", nats-0 has {body['num_routes']} routes"


def redis_check(k, ns):
    ip = k.pod(ns, "redis-0")["status"]["podIP"]
    raw = k.cp.node_ns.request(ip, 6379, b"INFO replication\r\nQUIT\r\n", 3.0)
    m = re.search(r"connected_slaves:(\d+)", raw)
    check(m and int(m.group(1)) == 2, f"redis-0 replication: {raw[:300]}")
    return ", redis-0 has 2 replicas connected"


# -- --replicas auto (issue 23) -----------------------------------------------------------------

def auto_overlay(k: K, name, replicas=None, extra_patches=()):
    """An overlay of manifests/ with manifests/replicas-auto: its rbac.yaml and its
    statefulset-patch.yaml, copied byte for byte into the overlay (kustomize refuses files outside
    an overlay's root; manifests/ itself is referenced as ../..-style directory). The patch file
    has no apiVersion/kind/metadata (it is written for `kubectl patch --patch-file`), so the
    overlay's copy gets those three lines in front, nothing else."""
    d = k.workdir / "overlays" / name
    d.mkdir(parents=True)
    auto = k.repo / "manifests" / "replicas-auto"
    shutil.copyfile(auto / "rbac.yaml", d / "rbac.yaml")
    (d / "statefulset-patch.yaml").write_text("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: consul\n"
                                              + (auto / "statefulset-patch.yaml").read_text())
    patches = [{"path": "statefulset-patch.yaml"}]
    for i, text in enumerate(extra_patches):
        (d / f"extra-{i}.yaml").write_text(text)
        patches.append({"path": f"extra-{i}.yaml"})
    kust = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(k.repo / "manifests", d), "rbac.yaml"], "patches": patches}
    if replicas is not None:
        kust["replicas"] = [{"name": "consul", "count": replicas}]
    (d / "kustomization.yaml").write_text(json.dumps(kust, indent=1))
    return d


def init_runs(k, ns, name):
    """The peerconf init container's processes of the live pod ns/name, oldest first."""
    return [p for p in k.runner(ns, name).pod.procs if p.name.endswith(".peerconf")]


def init_exit(code):
    """A pod whose peerconf init container has terminated with `code` at least once."""
    def ok(p):
        for c in p.get("status", {}).get("initContainerStatuses", []):
            for st in (c.get("state", {}), c.get("lastState", {})):
                if (st.get("terminated") or {}).get("exitCode") == code:
                    return True
        return False
    return ok


def check_auto_config(k, ns, name, replicas, start=0):
    cfg = consul_config(k, ns, name)
    ip = k.pod(ns, name)["status"]["podIP"]
    want = sorted(f"consul-{i}.consul.{ns}.svc.cluster.local" for i in range(start, start + replicas))
    check(cfg.get("bootstrap_expect") == replicas, f"{name}: bootstrap_expect {cfg.get('bootstrap_expect')}, not {replicas}")
    check(sorted(cfg.get("retry_join", [])) == want, f"{name}: retry_join {cfg.get('retry_join')}, not {want}")
    check(cfg.get("bind_addr") == ip, f"{name}: bind_addr {cfg.get('bind_addr')}, pod IP {ip}")
    return cfg


def with_token(k, token, path):
    """The API server's status for GET path with a bearer token (the harness's own request,
    from the node namespace, verified against the cluster CA)."""
    import ssl
    ctx = ssl.create_default_context(cafile=k.cp.certs.ca)
    sock = k.cp.node_ns.connect(k.cp.api_ip, k.cp.API_PORT, 5.0)
    with ctx.wrap_socket(sock, server_hostname=k.cp.api_ip) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {k.cp.api_ip}\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n".encode())
        head = tls.recv(64).decode(errors="replace")
    return int(head.split(" ", 2)[1])


def last_init_log(k, ns, name):
    """The log of the init container's last run that has finished (the kubelet restarts a failed
    init container at once the first time, so a newer run may have just started)."""
    runs = [r for r in init_runs(k, ns, name) if r.returncode is not None]
    check(runs, f"{ns}/{name}: no init container run has finished")
    return runs[-1].stderr()


def s_replicas_auto(k: K):
    """--replicas auto against the real API server: 3, scale to 5, start ordinal, RBAC missing, wrong CA, API stopped."""
    ns = k.namespace("k8s-auto")
    read_line = f"StatefulSet {ns}/consul"
    # (a) 3 replicas, REPLICAS=auto -------------------------------------------------------------
    names = [f"consul-{i}" for i in range(3)]
    t0 = time.monotonic()
    k.apply_k(auto_overlay(k, "consul-auto"), ns)
    took = k.wait_pods(ns, names, running, 120, "3 consul pods Running with REPLICAS=auto")
    tmpl = k.sts(ns, "consul")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in tmpl["initContainers"][0]["env"]}
    check(env.get("REPLICAS") == "auto", f"REPLICAS in the applied StatefulSet is {env.get('REPLICAS')}")
    check(tmpl.get("automountServiceAccountToken") is False, "automountServiceAccountToken is not false")
    main_mounts = [m["name"] for c in tmpl["containers"] for m in c.get("volumeMounts", [])]
    check("peerconf-token" not in main_mounts, f"the consul container mounts the token: {main_mounts}")
    for n in names:
        check_auto_config(k, ns, n, 3)
        runs = init_runs(k, ns, n)
        check(len(runs) == 1 and runs[0].returncode == 0, f"{n}: init runs {[r.returncode for r in runs]}")
        err = runs[0].stderr()
        check(read_line in err, f"{n}: the init log does not name {read_line}:\n{err[-800:]}")
        pod = k.runner(ns, n).pod
        tok = pod.host_path("/var/run/secrets/kubernetes.io/serviceaccount/token")
        st = tok.stat()
        check(oct(st.st_mode & 0o777) == "0o440" and st.st_gid == 1000, f"{n}: token mode {oct(st.st_mode)} gid {st.st_gid}")
        claims = json.loads(base64.urlsafe_b64decode(tok.read_text().split(".")[1] + "=="))
        check(claims["kubernetes.io"]["pod"]["name"] == n and claims["sub"] == f"system:serviceaccount:{ns}:consul",
              f"{n}: token claims {claims.get('sub')} {claims.get('kubernetes.io')}")
    line = next(x for x in last_init_log(k, ns, "consul-0").splitlines() if read_line in x)
    figure(f"replicas-auto (a): REPLICAS=auto, 3 pods Running, each consul.json bootstrap_expect 3 with 3 retry_join "
           f"names, {round(time.monotonic() - t0, 1)} s after apply -k (wait {took} s); token bound to the pod, 0440 "
           f"group 1000, only in the init container; init log: {line.strip()[:200]}")

    # (b) kubectl scale 3 -> 5: the new pods render 5; an old pod renders 5 on its next start --------
    t = time.monotonic()
    k.kubectl("scale", "statefulset", "consul", "-n", ns, "--replicas=5")
    took = k.wait_pods(ns, ["consul-3", "consul-4"], running, 120, "consul-3/4 Running after kubectl scale 5")
    for n in ("consul-3", "consul-4"):
        check_auto_config(k, ns, n, 5)
    before = {n: consul_config(k, ns, n)["bootstrap_expect"] for n in names}
    check(before == {n: 3 for n in names}, f"the old pods' configs changed without a restart: {before}")
    old_uid = k.pod(ns, "consul-1")["metadata"]["uid"]
    token = k.runner(ns, "consul-1").pod.host_path("/var/run/secrets/kubernetes.io/serviceaccount/token").read_text()
    sts_path = f"/apis/apps/v1/namespaces/{ns}/statefulsets/consul"
    rbac = {p: with_token(k, token, p) for p in (sts_path, f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                                                  f"/api/v1/namespaces/{ns}/pods")}
    check(list(rbac.values()) == [200, 403, 403], f"consul-1's token: {rbac}")
    t1 = time.monotonic()
    k.kubectl("delete", "pod", "consul-1", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    k.wait_pods(ns, ["consul-1"], lambda p: running(p) and p["metadata"]["uid"] != old_uid, 120,
                "consul-1 re-created and Running")
    check_auto_config(k, ns, "consul-1", 5)
    recreated = round(time.monotonic() - t1, 1)
    # The API server caches a successful token authentication (10 s in kube-apiserver): the token
    # of the deleted pod is refused once that entry has expired.
    check(wait_until(lambda: with_token(k, token, sts_path) == 401, 30, 0.5),
          f"the deleted consul-1's token still gets {with_token(k, token, sts_path)} 30 s later")
    revoked = round(time.monotonic() - t1, 1)
    after = {n: consul_config(k, ns, n)["bootstrap_expect"] for n in sorted(k.pods(ns))}
    figure(f"replicas-auto (b): bare `kubectl scale statefulset consul --replicas 5` (REPLICAS stays auto): consul-3/4 "
           f"Running with bootstrap_expect 5 and 5 retry_join names {took} s after the scale; consul-0..2 kept 3 until "
           f"restarted; consul-1 deleted -> re-created with 5 in {recreated} s; bootstrap_expect "
           f"by pod now {after}; consul-1's token: get this StatefulSet 200, list statefulsets 403, list pods 403, and "
           f"401 {revoked} s after its pod was deleted (bound token) (compare the consul scenario: with REPLICAS=3 the same scale leaves consul-3/4 exiting 2)")

    # (c) spec.ordinals.start 1: the members are consul-1..consul-5 --------------------------------
    t = time.monotonic()
    k.kubectl("patch", "statefulset", "consul", "-n", ns, "--type=merge", "-p", '{"spec":{"ordinals":{"start":1}}}')
    took = k.wait_pods(ns, ["consul-5"], running, 120, "consul-5 Running after ordinals.start 1")
    check(wait_until(lambda: "consul-0" not in k.pods(ns), 60, 0.25), "consul-0 not removed after ordinals.start 1")
    cfg = check_auto_config(k, ns, "consul-5", 5, start=1)
    figure(f"replicas-auto (c): spec.ordinals.start 1 -> consul-0 removed, consul-5 Running in {took} s with retry_join "
           f"{sorted(x.split('.')[0] for x in cfg['retry_join'])} (read from the StatefulSet; no PEERCONF_START_ORDINAL)")

    # (d) RoleBinding deleted: a new pod's init exits 2 with the 403 and the Role to add ---------------
    k.kubectl("delete", "rolebinding", "consul-peerconf", "-n", ns)
    old_uid = k.pod(ns, "consul-2")["metadata"]["uid"]
    t = time.monotonic()
    k.kubectl("delete", "pod", "consul-2", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    took = k.wait_pods(ns, ["consul-2"], lambda p: p["metadata"]["uid"] != old_uid and init_exit(2)(p), 90,
                       "the re-created consul-2's init exiting 2 without its RoleBinding")
    err = last_init_log(k, ns, "consul-2")
    check(init_runs(k, ns, "consul-2")[0].returncode == 2, f"consul-2 init exit {init_runs(k, ns, 'consul-2')[0].returncode}")
    check("403 Forbidden" in err and f'User "system:serviceaccount:{ns}:consul" cannot get resource "statefulsets"' in err
          and re.search(r"create role \S+ --verb=get --resource=statefulsets.apps --resource-name=consul", err),
          f"consul-2's init log does not say 403 with the Role to add:\n{err[-1200:]}")
    check(not k.runner(ns, "consul-2").pod.host_path("/config/consul.json").exists(), "consul-2 wrote consul.json after a 403")
    check(k.pod(ns, "consul-2")["status"]["phase"] == "Pending", "consul-2 is not Pending after its init failed")
    err_lines = [x.strip() for x in err.splitlines() if "403" in x or "hint:" in x]
    # Restored, the next back-off restart succeeds (the kubelet's 10 s).
    r = k.kubectl("apply", "-n", ns, "-f", k.repo / "manifests" / "replicas-auto" / "rbac.yaml")
    check("rolebinding.rbac.authorization.k8s.io/consul-peerconf created" in r.stdout, f"apply rbac.yaml: {r.stdout}")
    t2 = time.monotonic()
    k.wait_pods(ns, ["consul-2"], running, 60, "consul-2 Running once the RoleBinding is back")
    check_auto_config(k, ns, "consul-2", 5, start=1)
    figure(f"replicas-auto (d): RoleBinding deleted -> re-created consul-2's init exit 2 in {took} s, Pending, no "
           f"consul.json; log: {' | '.join(err_lines)[:900]}; RoleBinding re-applied -> Running with 5 members "
           f"{round(time.monotonic() - t2, 1)} s later (init back-off)")

    # (f) the API server stopped: the init retries until --timeout, exits 2, writes nothing ------------
    r = k.runner(ns, "consul-3")
    c = r.pod.init_container()
    args = [a for a in c["args"] if not a.startswith(("--timeout", "--output"))] + \
        ["--timeout=8s", "--output=/config/api-stopped.json"]
    out = r.pod.host_path("/config/api-stopped.json")
    k.cp.stop_apiserver()
    try:
        t = time.monotonic()
        proc = r.pod.start_init(args=args)
        rc = proc.wait(60)
        took = round(time.monotonic() - t, 1)
    finally:
        up = k.cp.restart_apiserver()
    check(rc == 2, f"init with the API server stopped: exit {rc}:\n{proc.stderr()[-800:]}")
    err = proc.stderr()
    check("could not read StatefulSet" in err and "--timeout" in err, f"no timeout message:\n{err[-800:]}")
    # peerconf stops early when its next pause (at most --max-interval, 1 s) would reach the
    # deadline (docs/commands.md), so the exit is within [timeout - 1 s, timeout] plus start-up.
    check(7.0 <= took <= 10.0, f"exit after {took} s with --timeout 8s (want 7-10 s)")
    check(not out.exists(), "a file was written with the API server stopped")
    figure(f"replicas-auto (f): kube-apiserver stopped, consul-3's init re-run with --timeout 8s: exit 2 after {took} s, "
           f"nothing written; log: {[x.strip() for x in err.splitlines() if 'could not read' in x][-1][:300]}; "
           f"the API server ready again {up} s after restart")
    k.delete_ns(ns)

    # (e) a CA that did not sign the API server's certificate: exit 2 naming the CA file -------------
    ns = k.namespace("k8s-auto-ca")
    cadir = k.workdir / "wrong-ca"
    cadir.mkdir()
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cadir / "ca.key", "-out",
         cadir / "ca.crt", "-days", "1", "-subj", "/CN=not-the-cluster-ca"], timeout=60,
        env={"PATH": "/usr/bin:/bin", "RANDFILE": str(cadir / ".rnd")})
    k.kubectl("create", "configmap", "wrong-ca", "-n", ns, f"--from-file=ca.crt={cadir / 'ca.crt'}")
    wrong = """apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: consul
spec:
  template:
    spec:
      volumes:
        - name: peerconf-token
          projected:
            sources:
              - serviceAccountToken: {path: token, expirationSeconds: 600}
              - configMap:
                  name: wrong-ca
                  items: [{key: ca.crt, path: ca.crt}]
"""
    k.apply_k(auto_overlay(k, "consul-auto-wrong-ca", replicas=1, extra_patches=[wrong]), ns)
    proj = [v for v in k.sts(ns, "consul")["spec"]["template"]["spec"]["volumes"] if v["name"] == "peerconf-token"]
    check([s_["configMap"]["name"] for s_ in proj[0]["projected"]["sources"] if "configMap" in s_] == ["wrong-ca"],
          f"the projected volume is {proj}")
    took = k.wait_pods(ns, ["consul-0"], init_exit(2), 60, "consul-0's init exiting 2 with the wrong CA")
    err = last_init_log(k, ns, "consul-0")
    check(init_runs(k, ns, "consul-0")[0].returncode == 2, "consul-0 init did not exit 2")
    check("does not verify" in err and "ca.crt" in err, f"consul-0's init log does not name the CA:\n{err[-1000:]}")
    check(not k.runner(ns, "consul-0").pod.host_path("/config/consul.json").exists(), "consul.json written with a wrong CA")
    figure(f"replicas-auto (e): projected CA from a ConfigMap of another CA -> consul-0 init exit 2 in {took} s, no "
           f"consul.json; log: {[x.strip() for x in err.splitlines() if 'verify' in x][-1][:400]}")
    k.delete_ns(ns)


SCENARIOS = [
    ("admission", s_admission),
    ("consul", s_consul),
    ("etcd", s_etcd),
    ("deadlock", s_deadlock),
    ("zookeeper", simple_cluster("zookeeper", [f"zookeeper-{i}" for i in range(3)], zk_check)),
    ("nats", simple_cluster("nats", [f"nats-{i}" for i in range(3)], nats_check)),
    ("redis", simple_cluster("redis", [f"redis-{i}" for i in range(3)], redis_check)),
    ("replicas-auto", s_replicas_auto),
    ("liveness", s_liveness),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--bins", required=True, help="KUBE_DIR,ETCD_DIR,COREDNS_DIR")
    ap.add_argument("--repo", type=Path, default=HERE.parent.parent)
    ap.add_argument("--net", type=int, default=77)
    ap.add_argument("--consul", type=Path, help="the Consul binary for hashicorp/consul (tests/consul/build.sh)")
    ap.add_argument("scenarios", nargs="*")
    a = ap.parse_args()
    install_stop_handlers()
    if a.consul:
        images.use_consul(a.consul)
    workdir = a.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    names = [n for n, _ in SCENARIOS]
    unknown = [s for s in a.scenarios if s not in names]
    if unknown:
        print(f"unknown scenarios {unknown}; known: {names}")
        print("k8s: 0 passed, 1 failed")
        return 2
    chosen = [(n, f) for n, f in SCENARIOS if not a.scenarios or n in a.scenarios]
    kube, etcd, coredns = a.bins.split(",")
    sup = Supervisor(workdir / "logs", workdir / "pids")
    cp = agent = None
    passed = failed = 0
    try:
        try:
            cp = ControlPlane(sup, workdir, {"kube": kube, "etcd": etcd, "coredns": coredns}, a.net)
            cp.start()
            log(f"control plane up: {cp.timings}")
            agent = agentmod.Agent(cp, sup, workdir, a.bin.resolve(), image_from_dockerfile(a.repo), log=log)
            agent.register()
            check(wait_until(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                         (cp.api.maybe_get(f"/api/v1/nodes/{agentmod.NODE}") or {}).get("status", {}).get("conditions", [])),
                             30, 0.25), "node not Ready")
            v = json.loads(cp.kubectl("version", "-o", "json").stdout)
            log(f"kubectl {v['clientVersion']['gitVersion']}, server {v['serverVersion']['gitVersion']}")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            log("setup failed")
            for p in sup.procs:
                log(f"{p.name}:\n{p.tail(8)}")
            print("k8s: 0 passed, 1 failed", flush=True)
            return 1
        k = K(cp, agent, a.repo.resolve(), workdir)
        for name, fn in chosen:
            log(f"--- {name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
            t = time.monotonic()
            try:
                fn(k)
                k.agent_ok()
                passed += 1
                log(f"PASS {name} ({time.monotonic() - t:.1f} s)")
            except Exception as e:  # noqa: BLE001
                failed += 1
                log(f"FAIL {name} ({time.monotonic() - t:.1f} s): {e}")
                if not isinstance(e, Failure):
                    traceback.print_exc()
                agent.errors.clear()
    finally:
        if not stop_everything(agent, cp, sup, log):
            failed += 1
    log("figures:\n  " + "\n  ".join(FIGURES))
    if os.environ.get("K8S_STARTED_AT"):
        log(f"run.sh total so far: {time.time() - float(os.environ['K8S_STARTED_AT']):.0f} s (install, build, suite)")
    print(f"k8s: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
