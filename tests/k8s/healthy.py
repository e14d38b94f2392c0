#!/usr/bin/env python3
"""Time to a healthy cluster on the real control plane, CoreDNS in the path (issues 19 and 21).

Started by tests/k8s/healthy.sh:

    healthy.py --workdir DIR --bin PEERCONF --bins KUBE,ETCD,COREDNS --out RESULTS.json
               [--datastores etcd,zookeeper] [--corefiles kubeadm,plain] [--modes peerconf,prerendered]
               [--runs N] [--budget SECS] [--seed S] [--net 78] [--prefix k8b]
    healthy.py --markdown RESULTS.json OUT.md

The control plane of tests/k8s (controlplane.py: etcd 3.6, kube-apiserver, controller-manager,
scheduler, CoreDNS) and its node agent (agent.py) are started once and kept across runs; each
run is a fresh namespace (PodSecurity restricted), deleted after the run.

One run of one datastore, one Corefile, one mode:

  first boot  t0 = just before `kubectl apply -k` (the example unchanged: mode `peerconf`; an
              overlay in the work dir whose init container runs `--wait=none` and no
              `--wait-on-restart`: mode `prerendered`, the file rendered at once and the
              datastore started at once). Each pod's record is delayed by the round's draw
              (uniform 0-3 s by default, the same draws for every mode and Corefile of a
              round): the agent runs the pod (network namespace, IP, init container, main
              containers) as soon as the scheduler binds it, but withholds `status.podIP` from
              the API server for that long after it has the IP, so the EndpointSlice controller
              cannot publish the pod, and CoreDNS cannot serve its name, before then. (The
              agent's own `ip_delay` delays the whole pod instead, sandbox included; the pods
              would then start late in both modes alike, which is not what the emulated tier
              measures.) Time: from t0 to the first moment the cluster is healthy.
  restart     then `kubectl delete pod <ds>-1` (graceful, as a user does it; its PVC keeps the
              data, the StatefulSet controller re-creates it, the agent gives it a new IP, no
              injected delay). Time: from just before the delete to healthy again.

Healthy, probed every 50 ms from the node namespace once every pod's main containers have
started (the same functions as bench/healthy.py and the e2e scenarios):

    etcd       every member's GET /health answers {"health":"true"}       (bench/healthy.py)
    zookeeper  one leader, the rest followers, the leader's zk_synced_followers = 2 (idem)
    nats       every server's /routez lists routes to both others          (idem)
    redis      redis-0 primary with both replicas online and linked, every Sentinel naming
               redis-0 with 2 replicas and 2 other Sentinels (tests/e2e/scenarios/redis_sentinel.py)

Nothing here fails on a timing; a run that is not healthy within --bound s is recorded as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # tests/: the harness package
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent / "e2e"))  # the e2e scenarios (Redis's health check; its suite.py is not ours)

from harness import Failure, check  # noqa: E402
from harness.manifests import find, image_from_dockerfile, load_docs  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers, wait_until  # noqa: E402

import agent as agentmod  # noqa: E402
from controlplane import ControlPlane, stop_everything  # noqa: E402
from suite import K, overlay  # noqa: E402
from scenarios.redis_sentinel import formed as redis_formed  # noqa: E402


def _load_bench_healthy():
    """bench/healthy.py (the emulated tier) under another module name: this file is healthy.py too."""
    spec = importlib.util.spec_from_file_location("bench_healthy", REPO / "bench" / "healthy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BH = _load_bench_healthy()
PROBE_EVERY = BH.PROBE_EVERY
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def load1():
    return float(open("/proc/loadavg").read().split()[0])


DATASTORES = {
    # name (= example dir = StatefulSet name = Service name): (healthy?, what healthy means)
    "etcd": (BH.etcd_healthy, "every member's /health"),
    "zookeeper": (BH.zk_healthy, "a leader, 2 followers synced"),
    "nats": (BH.nats_healthy, "full route mesh"),
    "redis": (lambda net, pods: redis_formed(net, pods, lambda: []),
              "redis-0 primary with 2 replicas online, every Sentinel agrees"),
}


# -- the record delay: status.podIP withheld, the pod running ---------------------------------------

class _HidingApi:
    """The agent's API client for one pod runner: while the runner's record is held back, its
    status patches go out without podIP/podIPs (a merge patch without a field leaves it as it
    was, so once published the IP stays)."""

    def __init__(self, api, runner):
        self._api, self._runner = api, runner

    def __getattr__(self, name):
        return getattr(self._api, name)

    def patch(self, path, body, *a, **kw):
        r = self._runner
        if r.hold_record and path == r.path + "/status":
            body = json.loads(json.dumps(body))
            body["status"].pop("podIP", None)
            body["status"].pop("podIPs", None)
        return self._api.patch(path, body, *a, **kw)


class DelayedRecordRunner(agentmod.PodRunner):
    """agent.PodRunner, with the pod's podIP published `record_delay` s after it got its IP."""

    def __init__(self, agent, obj):
        super().__init__(agent, obj)
        self.record_delay = getattr(agent, "record_delay", {}).get((self.ns, self.name), 0.0)
        self.hold_record = self.record_delay > 0
        self.api = _HidingApi(agent.api, self)
        self.t_record = None  # monotonic: podIP sent to the API server
        self._timer = None
        self._status_lock = threading.Lock()

    def _status(self, reason=None):
        with self._status_lock:
            if self.ip is not None and self._timer is None and self.t_record is None:
                if self.hold_record:
                    self._timer = threading.Timer(self.record_delay, self._publish)
                    self._timer.daemon = True
                    self._timer.start()
            super()._status(reason)
            if self.ip is not None and not self.hold_record and self.t_record is None:
                self.t_record = time.monotonic()

    def _publish(self):
        if self.stop_event.is_set():
            return
        self.hold_record = False
        try:
            self._status()
        except Exception as e:  # noqa: BLE001 - recorded, the run reports it
            self.agent.errors.append(f"{self.ns}/{self.name}: publishing podIP: {e}")


class BenchAgent(agentmod.Agent):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.record_delay = {}  # (namespace, pod name) -> seconds


# agent.Agent._loop makes its runners through this module-level name: this driver's agent makes
# DelayedRecordRunners (the agent module itself is unchanged; tests/k8s/run.sh never loads this).
agentmod.PodRunner = DelayedRecordRunner


# -- one run ----------------------------------------------------------------------------------------

class Bench:
    def __init__(self, k: K, args):
        self.k, self.a = k, args
        self.cp, self.agent = k.cp, k.agent
        self.prerendered = {}
        self.init_args = {}

    def base(self, ds, mode):
        example = self.k.repo / "manifests" / "examples" / ds
        if mode == "peerconf":
            return example
        if ds not in self.prerendered:
            docs = load_docs(self.cp.kubectl("kustomize", example).stdout)
            sts = find(docs, "StatefulSet", ds)
            args = sts["spec"]["template"]["spec"]["initContainers"][0]["args"]
            check(any(a.startswith("--wait=") for a in args), f"{ds}: no --wait= in the init args {args}")
            new = [("--wait=none" if a.startswith("--wait=") else a) for a in args
                   if not a.startswith("--wait-on-restart=")]
            self.init_args[ds] = " ".join(a for a in args if a.startswith(("--wait=", "--wait-on-restart=",
                                                                          "--own-record=", "--data-path=")))
            target = {"group": "apps", "version": "v1", "kind": "StatefulSet", "name": ds}
            self.prerendered[ds] = overlay(self.k, example, f"{ds}-prerendered", patches=[
                (target, [{"op": "replace", "path": "/spec/template/spec/initContainers/0/args", "value": new}])])
        return self.prerendered[ds]

    def runners(self, ns, names):
        """The live runner of each named pod (None while the agent has none)."""
        out = {}
        for r in list(self.agent.runners.values()):
            if r.ns == ns and r.name in names and not r.stop_event.is_set():
                if r.name not in out or r.created_mono > out[r.name].created_mono:
                    out[r.name] = r
        return {n: out.get(n) for n in names}

    def wait_healthy(self, ds, ns, names, t0, bound_after, exclude_uid=None):
        """Probe until healthy; (outcome, monotonic healthy moment or None, runners)."""
        probe = DATASTORES[ds][0]
        svc = ds
        net = SimpleNamespace(node_ns=self.cp.node_ns)
        while True:
            self.k.agent_ok()
            rs = self.runners(ns, names)
            now = time.monotonic()
            live = all(r is not None and r.uid != exclude_uid for r in rs.values())
            if live and all(r.initialized and r.main_procs for r in rs.values()):
                pods = [SimpleNamespace(name=n, ip=r.ip, fqdn=f"{n}.{svc}.{ns}.svc.cluster.local")
                        for n, r in rs.items()]
                try:
                    ok = probe(net, pods)
                except (OSError, ValueError, IndexError, KeyError):
                    ok = False
                if ok:
                    return "healthy", time.monotonic(), rs
            published = [r.t_record for r in rs.values() if r is not None]
            last = max(published) if live and None not in published else None
            if (last is not None and now > last + bound_after) or now > t0 + bound_after + 60:
                return f"not healthy within {bound_after:.0f} s of the last record", None, rs
            time.sleep(PROBE_EVERY)

    @staticmethod
    def pod_times(rs, t0):
        rel = lambda t: None if t is None else round(t - t0, 3)  # noqa: E731
        out = {}
        for n, r in rs.items():
            if r is None:
                continue
            out[n] = {"ip": r.ip, "seen": rel(r.created_mono), "ip_set": rel(r.t_ip), "record": rel(r.t_record),
                      "init_done": rel(r.t_init_done),
                      "init_runs": len([p for p in (r.pod.procs if r.pod else []) if p.name.endswith(".peerconf")]),
                      "main_restarts": sum(int(s.get("restartCount", 0)) for s in r.main_status.values())}
        return out

    def init_log(self, r):
        if r is None or r.pod is None:
            return ""
        runs = [p for p in r.pod.procs if p.name.endswith(".peerconf")]
        return runs[-1].stderr()[-3000:] if runs else ""

    def run(self, seq, ds, corefile, mode, delays):
        k = self.k
        ns = k.namespace(f"{self.a.prefix}-{seq}-{ds[:4]}")
        names = [f"{ds}-{i}" for i in range(3)]
        self.agent.record_delay = {(ns, n): d for n, d in zip(names, delays)}
        base = self.base(ds, mode)
        rec = {"seq": seq, "datastore": ds, "corefile": corefile, "mode": mode, "namespace": ns,
               "delays": [round(d, 3) for d in delays], "load1": load1()}
        try:
            t0 = time.monotonic()
            k.apply_k(base, ns)
            rec["apply_s"] = round(time.monotonic() - t0, 3)
            outcome, t_ok, rs = self.wait_healthy(ds, ns, names, t0, self.a.bound)
            rec["boot"] = {"outcome": outcome, "healthy_s": None if t_ok is None else round(t_ok - t0, 3),
                           "pods": self.pod_times(rs, t0)}
            rec["boot"]["init_logs"] = {n: self.init_log(r)[-1200:] for n, r in rs.items()}
            if t_ok is None:
                return rec
            # -- restart: the user deletes one pod; its PVC keeps the data ------------------------
            victim = names[1]
            self.agent.record_delay = {}
            old = rs[victim]
            rec["load1_restart"] = load1()
            t1 = time.monotonic()
            k.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
            outcome, t_ok, rs2 = self.wait_healthy(ds, ns, names, t1, self.a.bound, exclude_uid=old.uid)
            new = rs2.get(victim)
            rec["restart"] = {"outcome": outcome, "healthy_s": None if t_ok is None else round(t_ok - t1, 3),
                              "old_ip": old.ip, "new_ip": None if new is None else new.ip,
                              "pods": self.pod_times({victim: new}, t1),
                              "init_log": self.init_log(new)}
            return rec
        finally:
            self.agent.record_delay = {}
            k.kubectl("delete", "namespace", ns, "--wait=false", check_rc=False)
            # The namespace's pods stopped (their processes, on this machine's CPUs) before the next
            # run; the API objects go on being collected in the background.
            gone = wait_until(lambda: not any(r.ns == ns and not r.done.is_set()
                                              for r in list(self.agent.runners.values())), 90, 0.2)
            if not gone:
                log(f"warning: pods of {ns} still running 90 s after its deletion")


# -- summary ----------------------------------------------------------------------------------------

def values(runs, ds, phase, corefile, mode):
    out = []
    for r in runs:
        if (r["datastore"], r["corefile"], r["mode"]) != (ds, corefile, mode) or phase not in r:
            continue
        out.append(r[phase]["healthy_s"])
    return out


def stats(vals):
    ok = [v for v in vals if v is not None]
    return {"n": len(vals), "ok": len(ok), "median": statistics.median(ok) if ok else None,
            "p90": BH.pct(ok, 90) if ok else None, "values": vals}


def markdown(doc):
    L = []
    w = L.append
    runs = doc["runs"]
    loads = [r["load1"] for r in runs] or [0]
    w(f"Run **{doc['date']}**, commit `{doc.get('commit', '?')}`, peerconf `{doc['binary']}`, "
      f"{max((r['round'] for r in runs), default=0)} round(s) (the last may be cut by --deadline or --budget), took {doc.get('duration_s', 0):.0f} s; 1-min load average "
      f"{doc['load_start']} at the start, {doc.get('load_end', '?')} at the end, "
      f"{min(loads):.2f}-{max(loads):.2f} at the start of each run ({doc['nproc']} cores). Record "
      f"delays: uniform {doc['delay'][0]:g}-{doc['delay'][1]:g} s per pod at first boot (the same draws "
      "for every mode and Corefile of a round), none at the restart.")
    w("")
    w("| datastore | phase | Corefile | peerconf (example's policy): median / p90 | prerendered (`--wait=none`): "
      "median / p90 | runs (healthy / all) | peerconf - prerendered (medians) |")
    w("|---|---|---|---|---|---|---|")
    fmt = lambda s: "-" if s["median"] is None else f"{s['median']:.2f} / {s['p90']:.2f} s"  # noqa: E731
    for ds in doc["datastores"]:
        for phase in ("boot", "restart"):
            for cf in doc["corefiles"]:
                a = stats(values(runs, ds, phase, cf, "peerconf"))
                b = stats(values(runs, ds, phase, cf, "prerendered"))
                if not a["n"] and not b["n"]:
                    continue
                d = f"{a['median'] - b['median']:+.2f} s" if a["median"] is not None and b["median"] is not None else "-"
                w(f"| {ds} | {'first boot' if phase == 'boot' else 'restart'} | {cf} | {fmt(a)} "
                  f"(`{doc['policies'].get(ds, '?')}`) | {fmt(b)} | {a['ok']}/{a['n']}, {b['ok']}/{b['n']} | {d} |")
    w("")
    w("Where the time goes, medians over the healthy runs, s from t0 (the apply; the delete for a restart): "
      "the agent saw the last pod, the last pod got its IP, the last podIP reached the API server (the "
      "record's earliest moment), the last init container exited, healthy:")
    w("")
    w("| datastore | phase | Corefile | mode | last pod seen | last IP | last podIP published | last init done | "
      "healthy |")
    w("|---|---|---|---|---|---|---|---|---|")
    med = lambda xs: "-" if not xs else f"{statistics.median(xs):.2f}"  # noqa: E731
    for ds in doc["datastores"]:
        for phase in ("boot", "restart"):
            for cf in doc["corefiles"]:
                for mode in doc["modes"]:
                    rs = [r[phase] for r in runs if (r["datastore"], r["corefile"], r["mode"]) == (ds, cf, mode)
                          and phase in r and r[phase]["healthy_s"] is not None]
                    if not rs:
                        continue
                    last = lambda key: [max(p[key] for p in r["pods"].values()) for r in rs  # noqa: E731
                                        if r["pods"] and all(p[key] is not None for p in r["pods"].values())]
                    w(f"| {ds} | {'first boot' if phase == 'boot' else 'restart'} | {cf} | {mode} | {med(last('seen'))} | "
                      f"{med(last('ip_set'))} | {med(last('record'))} | {med(last('init_done'))} | "
                      f"{med([r['healthy_s'] for r in rs])} |")
    w("")
    w("Every run (s to healthy, `-` not healthy; load at the run's start):")
    w("")
    for ds in doc["datastores"]:
        for phase in ("boot", "restart"):
            for cf in doc["corefiles"]:
                for mode in doc["modes"]:
                    rs = [r for r in runs if (r["datastore"], r["corefile"], r["mode"]) == (ds, cf, mode) and phase in r]
                    if not rs:
                        continue
                    vals = ", ".join(("-" if r[phase]["healthy_s"] is None else f"{r[phase]['healthy_s']:.2f}")
                                     for r in rs)
                    ld = ", ".join(f"{r['load1']:.1f}" for r in rs)
                    w(f"- {ds}, {phase}, {cf}, {mode}: {vals} (load {ld})")
    for r in runs:
        if "error" in r:
            w(f"- run {r['seq']} ({r['datastore']}, {r['corefile']}, {r['mode']}) failed: {r['error'][:300]}")
    w("")
    w("Command: `" + doc["command"] + "`")
    return "\n".join(L) + "\n"


# -- main -------------------------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", nargs=2, metavar=("RESULTS", "OUT"))
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--bin", type=Path)
    ap.add_argument("--bins", help="KUBE_DIR,ETCD_DIR,COREDNS_DIR")
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--net", type=int, default=78)
    ap.add_argument("--prefix", default="k8b")
    ap.add_argument("--datastores", default="etcd,zookeeper")
    ap.add_argument("--corefiles", default="kubeadm,plain")
    ap.add_argument("--modes", default="peerconf,prerendered")
    ap.add_argument("--runs", type=int, default=10, help="rounds: each round runs every cell once")
    ap.add_argument("--budget", type=float, default=0, help="start no new round after this many s (0: none)")
    ap.add_argument("--deadline", default=None, help="start no new run after this UTC time HH:MM")
    ap.add_argument("--bound", type=float, default=60.0, help="s after the last record to wait for healthy")
    ap.add_argument("--delay", default="0-3", help="record delay range in s at first boot, LO-HI")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--commit", default="?")
    ap.add_argument("--command", default=" ".join(argv))
    a = ap.parse_args(argv[1:])
    if a.markdown:
        Path(a.markdown[1]).write_text(markdown(json.loads(Path(a.markdown[0]).read_text())))
        return 0
    for need in ("workdir", "bin", "bins", "out"):
        check(getattr(a, need) is not None, f"--{need} is required")
    dss, cfs, modes = a.datastores.split(","), a.corefiles.split(","), a.modes.split(",")
    for d in dss:
        check(d in DATASTORES, f"unknown datastore {d}; known: {', '.join(DATASTORES)}")
    lo, hi = (float(x) for x in a.delay.split("-"))
    install_stop_handlers()
    workdir = a.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    binary = workdir / "peerconf"  # a private copy: others may rebuild theirs meanwhile
    binary.write_bytes(a.bin.read_bytes())
    os.chmod(binary, 0o755)
    kube, etcd, coredns = a.bins.split(",")
    sup = Supervisor(workdir / "logs", workdir / "pids")
    cp = agent = None
    rng = random.Random(a.seed)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": a.commit, "binary": str(a.bin),
           "nproc": os.cpu_count(), "datastores": dss, "corefiles": cfs, "modes": modes, "delay": [lo, hi],
           "bound": a.bound, "seed": a.seed, "load_start": " / ".join(open("/proc/loadavg").read().split()[:3]),
           "runs": [], "rounds": 0, "command": a.command, "policies": {}}
    t_start = time.monotonic()
    rc = 0
    try:
        cp = ControlPlane(sup, workdir, {"kube": kube, "etcd": etcd, "coredns": coredns}, a.net,
                          corefile=cfs[0], prefix=a.prefix)
        cp.start()
        log(f"control plane up: {cp.timings}")
        agent = BenchAgent(cp, sup, workdir, binary, image_from_dockerfile(a.repo), log=lambda m: None)
        agent.register()
        check(wait_until(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                     (cp.api.maybe_get(f"/api/v1/nodes/{agentmod.NODE}") or {}).get("status", {})
                                     .get("conditions", [])), 30, 0.25), "node not Ready")
        k = K(cp, agent, a.repo.resolve(), workdir)
        b = Bench(k, a)
        for ds in dss:
            b.base(ds, "prerendered")
        doc["policies"] = b.init_args
        seq = 0
        stop = False
        for rnd in range(a.runs):
            if a.budget and rnd and time.monotonic() - t_start > a.budget:
                log(f"budget of {a.budget:.0f} s spent: stopping after {rnd} round(s)")
                break
            draws = {ds: [rng.uniform(lo, hi) for _ in range(3)] for ds in dss}
            order_cf = cfs if rnd % 2 == 0 else list(reversed(cfs))
            for cf in order_cf:
                if cp.corefile_name != cf:
                    cp.start_coredns(cf)
                for ds in dss:
                    order = modes if rng.random() < 0.5 else list(reversed(modes))
                    for mode in order:
                        if a.deadline and time.strftime("%H:%M", time.gmtime()) >= a.deadline:
                            stop = True
                            break
                        seq += 1
                        try:
                            rec = b.run(seq, ds, cf, mode, draws[ds])
                        except Failure as e:  # recorded and reported; the next run goes on
                            log(f"run {seq} ({ds} {cf} {mode}) failed: {e}")
                            rec = {"seq": seq, "datastore": ds, "corefile": cf, "mode": mode, "load1": load1(),
                                   "delays": draws[ds], "error": str(e)[:2000]}
                            agent.errors.clear()
                        rec["round"] = rnd + 1
                        doc["runs"].append(rec)
                        boot = rec.get("boot", {}).get("healthy_s")
                        rs = rec.get("restart", {}).get("healthy_s")
                        log(f"round {rnd + 1} {ds:9} {cf:7} {mode:11} boot {boot} restart {rs} "
                            f"(delays {', '.join(f'{d:.2f}' for d in draws[ds])}; load {rec['load1']:.2f})")
                        doc["duration_s"] = time.monotonic() - t_start
                        doc["load_end"] = " / ".join(open("/proc/loadavg").read().split()[:3])
                        a.out.write_text(json.dumps(doc, indent=1))
                    if stop:
                        break
                if stop:
                    break
            doc["rounds"] = rnd + 1 if not stop else rnd + 0.5
            a.out.write_text(json.dumps(doc, indent=1))
            if stop:
                log(f"deadline {a.deadline} UTC reached")
                break
    except Exception as e:  # noqa: BLE001
        rc = 1
        if not isinstance(e, Failure):
            traceback.print_exc()
        log(f"error: {e}")
    finally:
        stop_everything(agent, cp, sup, log)
        if doc["runs"]:
            a.out.write_text(json.dumps(doc, indent=1))
            print(markdown(doc), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
