#!/usr/bin/env python3
"""Time to a healthy cluster (issue 15, item 1): real etcd, ZooKeeper and NATS from Debian, each
pod in a network namespace of its own (tests/harness/podnet.py), as the e2e scenarios run them.

    healthy.py --bin PEERCONF --repo DIR --workdir DIR --out RESULTS.json [--runs N]
               [--datastores etcd,zookeeper,nats] [--profiles 0-3,10-20] [--budget SECS] [--seed S]
    healthy.py --markdown RESULTS.json OUT.md

One run: the 3 pods of the shipped example (manifests/examples/DATASTORE) start together at t0
and each pod's DNS record appears at a random offset from t0 (uniform over the profile, e.g.
0-3 s); the time reported is from t0 to the first moment the cluster is healthy:

    etcd       every member's GET /health (client port 2379) answers 200 {"health":"true"}
    zookeeper  `srvr` on every server: one leader, the rest followers; the leader's `mntr` says
               zk_synced_followers = 2
    nats       every server's /routez lists routes to both others (by name, through /varz)

Profile `restart` (data kept, new IP, the old record served for 4 s): see RESTART_MODES below.

Modes, drawn with the same offsets one after the other (a pair):
    peerconf     the init containers start at t0 with the example's args (its --wait policy);
                 each main container starts as soon as its init exits 0
    prerendered  the same init renders the same file with --wait=none before t0 (the tutorial's
                 way: a file rendered ahead, nothing waited for); every main container starts at t0

A cluster not healthy within --bound s after its last record appeared is reported as such: an
error for `peerconf` (exit 1 at the end), a result for `prerendered`. A main container that exits
is reported the same way (Kubernetes would restart it after a back-off; this bench does not).
Timings never fail this script. Needs root (network namespaces), PyYAML and kubectl (kustomize).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the harness package
sys.path.insert(0, str(REPO / "tests" / "e2e"))  # the scenarios (how each datastore starts and is probed)

from harness import Failure, check  # noqa: E402
from harness.manifests import find, image_from_dockerfile, kustomize  # noqa: E402
from harness.podnet import PodNet  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers  # noqa: E402
from scenarios.common import governing_service  # noqa: E402
from scenarios.datastores import JAVA_FILES, start_zookeeper, with_wait, zk_ensemble  # noqa: E402
from scenarios.etcd_lifecycle import start_etcd  # noqa: E402
from scenarios.kafka_cluster import LIBS as KAFKA_LIBS, registered as kafka_registered, shims as kafka_shims, \
    start_kafka  # noqa: E402
from scenarios.nats_cluster import full_mesh, http_get, start_nats  # noqa: E402
from scenarios.rabbitmq_cluster import cluster_views, lay_out_secret, listening, node_name, \
    start_rabbitmq  # noqa: E402
from scenarios.redis_sentinel import formed as redis_formed, start_pod as start_redis  # noqa: E402

PROFILES = {"0-3": (0.0, 3.0), "10-20": (10.0, 20.0), "restart": (4.0, 4.0), "peer-gone": (10.0, 10.0)}
MODES = ("peerconf", "prerendered")
# The restart profile (issue 21): a formed cluster; one pod re-created with its data and a new
# IP while DNS serves its old IP for STALE_S more seconds. Its modes:
#   peerconf     its init runs with the example's args (a restart: --wait-on-restart if any)
#   prerendered  rendered with --wait=none, main started at once: it meets the stale record
#   fresh        rendered with --wait=none, main started at once, the new record served at once
#                (an unwaited restart that cannot hit the stale address: the floor)
RESTART_MODES = ("peerconf", "prerendered", "fresh")
STALE_S = 4.0
# The peer-gone profile (issue 21 item 3, --data-path): a formed cluster; pods 0 and 2 go (their
# containers stop, their records are removed: NXDOMAIN), then pod 1 is re-created with its data
# and a new IP, its new record served at once (t0). Pods 0 and 2 come back, with their data and
# new IPs, records served at once, at t0 + GONE_S. Its modes:
#   peerconf           every init with the example's args (a restart: --wait-on-restart if any)
#   no-restart-policy  the same args without --wait-on-restart (the first-boot policy applies)
GONE_MODES = ("peerconf", "no-restart-policy")
GONE_S = 10.0
ALL_MODES = ("peerconf", "prerendered", "fresh", "no-restart-policy")


def modes_of(prof):
    return {"restart": RESTART_MODES, "peer-gone": GONE_MODES}.get(prof, MODES)


def procs_of(name, main):
    """(name, process) of a pod's main containers: one process, or {container: process}."""
    if isinstance(main, dict):
        return [(f"{name} {c}", proc) for c, proc in main.items()]
    return [(name, main)]


def first_dead(mains):
    for name, main in mains.items():
        for n, proc in procs_of(name, main):
            if not proc.running():
                return n, proc
    return None


def unwaited(pod):
    """The init args rendering at once: --wait=none, no restart policy."""
    return [a for a in with_wait(pod, "none") if not a.startswith("--wait-on-restart=")]


def form_cluster(net, pods, start_main, probe, bound):
    """Every record published, every config rendered unwaited, every main started: healthy
    within `bound` s or Failure. Not timed: the restart runs start from here."""
    for p in pods:
        net.publish(p)
        p.start_init(args=unwaited(p))
    mains = {}
    for p in pods:
        rc = p.init.wait(10)
        check(rc == 0, f"{p.name}: forming init exited {rc}\n{p.init.tail()}")
        mains[p.name] = start_main(p)
    deadline = time.monotonic() + bound
    state = {}
    while probe(net, pods, state) is not True:
        check(time.monotonic() < deadline, f"the cluster did not form within {bound:.0f}s: {state}")
        time.sleep(PROBE_EVERY)
    return mains


def new_pod(ctx, ds, net, old, ip):
    """Pod `old` re-created (same name and PVCs, fresh emptyDirs, new IP), its Secrets laid out."""
    pod = net.recreate(old, ip)
    prepare(ctx, ds, pod)
    return pod


def prepare(ctx, ds, pod):
    hook = DATASTORES[ds].get("prepare")
    if hook:
        hook(ctx, pod)


def restart_run(ctx, seq, ds, mode, bound, victim=1):
    """One restart: pod `victim` re-created with its data and a new IP at t0; its old record is
    served until t0 + STALE_S (mode fresh: the new one from t0). Time from t0 to healthy."""
    start_main, probe = starter(ctx, ds), DATASTORES[ds]["probe"]
    docs = ctx["docs"][ds]
    rundir = ctx["workdir"] / f"run{seq}"
    rundir.mkdir()
    net = PodNet(ctx["sup"], rundir, ctx["binary"], ctx["image"], ctx["net"],
                 prefix=f"pcbh{ctx['net']}r{seq}", name=f"run{seq}-{ds}-restart-{mode}")
    rec = {"datastore": ds, "mode": mode, "offsets": [STALE_S if mode != "fresh" else 0.0],
           "load1": float(open("/proc/loadavg").read().split()[0])}
    prober = None
    pods = []
    try:
        pods = net.statefulset(docs, f"bench-{ds}", subnet=1)
        for p in pods:
            prepare(ctx, ds, p)
        mains = form_cluster(net, pods, start_main, probe, bound)
        old = pods[victim]
        new = new_pod(ctx, ds, net, old, net.ip(1, 41))
        pods[victim] = new
        mains.pop(new.name)  # the old pod's container, stopped by recreate
        if mode != "peerconf":
            new.start_init(args=unwaited(new))
            rc = new.init.wait(10)
            check(rc == 0, f"{new.name}: unwaited init exited {rc}\n{new.init.tail()}")
        t0 = time.monotonic()
        started = {}
        if mode == "peerconf":
            new.start_init()
        else:
            mains[new.name] = start_main(new)
            started[new.name] = 0.0
        if mode == "fresh":
            net.publish(new, wait=False)
        published = mode == "fresh"
        prober = Prober(probe, net, pods)
        deadline = t0 + STALE_S + bound
        outcome = None
        while outcome is None:
            now = time.monotonic()
            if not published and now - t0 >= STALE_S:
                net.publish(new, wait=False)
                published = True
            if new.name not in started and not new.init.running():
                check(new.init.returncode == 0, f"{new.name}: init exited {new.init.returncode}\n{new.init.tail()}")
                mains[new.name] = start_main(new)
                started[new.name] = time.monotonic() - t0
            if new.name in started and not prober.started_once():
                prober.start()
            outcome = prober.outcome(mains, now > deadline, f"{bound:.0f}s after the new record", rec, ds)
            if outcome is None:
                time.sleep(0.01)
        rec["outcome"] = outcome
        rec["healthy_s"] = round(prober.healthy_at - t0, 3) if outcome == "healthy" else None
        rec["published_s"] = {new.name: 0.0 if mode == "fresh" else STALE_S}
        rec["main_started_s"] = {n: round(v, 3) for n, v in started.items()}
        return rec
    finally:
        if prober is not None:
            prober.halt.set()
            if prober.is_alive():
                prober.join(5)
        for p in pods:
            net.delete(p)
        net.close()
def peer_gone_run(ctx, seq, ds, mode, bound):
    """One restart with two peers gone (see GONE_MODES). Time from t0 (pod 1 re-created) to healthy."""
    start_main, probe = starter(ctx, ds), DATASTORES[ds]["probe"]
    docs = ctx["docs"][ds]
    rundir = ctx["workdir"] / f"run{seq}"
    rundir.mkdir()
    net = PodNet(ctx["sup"], rundir, ctx["binary"], ctx["image"], ctx["net"],
                 prefix=f"pcbh{ctx['net']}r{seq}", name=f"run{seq}-{ds}-gone-{mode}")
    rec = {"datastore": ds, "mode": mode, "offsets": [0.0, GONE_S, GONE_S],
           "load1": float(open("/proc/loadavg").read().split()[0])}
    prober = None
    pods = []

    def args(pod):
        if mode == "peerconf":
            return None
        return [a for a in pod.init_container()["args"] if not a.startswith("--wait-on-restart=")]

    try:
        pods = net.statefulset(docs, f"bench-{ds}", subnet=1)
        for p in pods:
            prepare(ctx, ds, p)
        mains = form_cluster(net, pods, start_main, probe, bound)
        for i in (0, 2):  # two peers go: their containers stop, their names stop resolving
            net.unpublish(pods[i])
            net.delete(pods[i])
            mains.pop(pods[i].name)
        new = new_pod(ctx, ds, net, pods[1], net.ip(1, 41))  # stopped last: it was the last one up
        pods[1] = new
        mains.pop(new.name)
        t0 = time.monotonic()
        net.publish(new, wait=False)
        new.start_init(args=args(new))
        back = False
        started, inits = {}, {}
        prober = Prober(probe, net, pods)
        deadline = t0 + GONE_S + bound
        outcome = None
        while outcome is None:
            now = time.monotonic()
            if not back and now - t0 >= GONE_S:
                for i in (0, 2):
                    old = pods[i]
                    p = net.pod(old.docs, old.sts, old.ordinal, old.namespace, net.ip(1, 42 + i))
                    prepare(ctx, ds, p)
                    pods[i] = p
                    net.publish(p, wait=False)
                    p.start_init(args=args(p))
                back = True
            for p in pods:
                if p.name not in mains and p.init is not None and not p.init.running() and (back or p is new):
                    check(p.init.returncode == 0, f"{p.name}: init exited {p.init.returncode}\n{p.init.tail()}")
                    inits[p.name] = round(p.init.exited_at - t0, 3)
                    mains[p.name] = start_main(p)
                    started[p.name] = time.monotonic() - t0
            if len(mains) == len(pods) and not prober.started_once():
                prober.start()
            outcome = prober.outcome(mains, now > deadline, f"{bound:.0f}s after the peers came back", rec, ds)
            if outcome is None:
                time.sleep(0.01)
        rec["outcome"] = outcome
        rec["healthy_s"] = round(prober.healthy_at - t0, 3) if outcome == "healthy" else None
        rec["published_s"] = {pods[1].name: 0.0, pods[0].name: GONE_S, pods[2].name: GONE_S}
        rec["main_started_s"] = {n: round(v, 3) for n, v in started.items()}
        rec["init_exited_s"] = inits
        return rec
    finally:
        if prober is not None:
            prober.halt.set()
            if prober.is_alive():
                prober.join(5)
        for p in pods:
            net.delete(p)
        net.close()


PROBE_EVERY = 0.05  # s between two probes of the whole cluster


def etcd_healthy(net, pods, state=None):
    for p in pods:
        try:
            status, body = http_get(net, p, 2379, "/health")
            if status != 200 or json.loads(body).get("health") != "true":
                return False
        except (OSError, ValueError, IndexError):
            return False
    return True


def zk_healthy(net, pods, state=None):
    return zk_ensemble(net, pods)[1]


def nats_healthy(net, pods, state=None):
    try:
        return full_mesh(net, pods)
    except (OSError, ValueError, IndexError, KeyError):
        return False


def redis_healthy(net, pods, state=None):
    """The e2e scenario's `formed`: pod 0 primary listing both replicas (by FQDN) online, each
    replica's link up, every Sentinel naming pod 0's FQDN with 2 replicas and 2 other Sentinels.
    Its process checks are left to the run loop (an exit is an outcome here, not an error)."""
    try:
        return redis_formed(net, pods, lambda: [])
    except (OSError, ValueError, IndexError, KeyError):
        return False


def rabbitmq_healthy(net, pods, state):
    """One cluster of 3 running nodes on every node: `rabbitmqctl cluster_status` on each lists
    all three in running_nodes (asked once all three accept AMQP connections, i.e. have booted).
    A split is final once every node has booted (a booted node no longer runs peer discovery, and
    clusters formed apart never merge): all three answer, with different running_nodes, in two
    probes in a row. Returns True, False or the split's description."""
    if not all(listening(net, p) for p in pods):
        state["split"] = 0
        return False
    views = cluster_views(pods)
    state["views"] = {p.name: v for p, v in zip(pods, views)}
    if all(v == sorted(node_name(p) for p in pods) for v in views):
        return True
    if None not in views and len({tuple(v) for v in views}) > 1:
        state["split"] = state.get("split", 0) + 1
        if state["split"] >= 2:
            short = {f"rabbit@{p.fqdn}": p.name for p in pods}
            return "split: " + "; ".join(f"{p.name} runs with {'+'.join(short.get(n, n) for n in v)}"
                                         for p, v in zip(pods, views))
    else:
        state["split"] = 0
    return False


def kafka_healthy(net, pods, state=None):
    """Every broker's Metadata answer lists the 3 brokers (scenarios.kafka_cluster.brokers):
    the static controller quorum elected a leader and all 3 brokers registered, unfenced."""
    import struct
    try:
        return kafka_registered(net, pods)
    except (OSError, ValueError, IndexError, struct.error):
        return False


def rabbitmq_prepare(ctx, pod):
    """The Secret volume with the run's Erlang cookie, as the kubelet lays it out."""
    lay_out_secret(pod, ctx.setdefault("cookie", f"bench-cookie-{random.getrandbits(64):016x}"))


def kafka_start(ctx, pod):
    if "kafka_files" not in ctx:
        check(KAFKA_LIBS.is_dir(), f"no Kafka jars in {KAFKA_LIBS}: run tests/e2e/kafka-jars.sh")
        ctx["kafka_files"] = kafka_shims(ctx["workdir"]) + JAVA_FILES
    return start_kafka(pod, ctx["kafka_files"])


DATASTORES = {
    # name (= example dir = StatefulSet name): start its main container(s) (the e2e scenario's
    # function), healthy? (True, False, or a final outcome such as a split), what healthy means,
    # prepare (what the kubelet lays out before the init runs: Secret volumes)
    "etcd": {"start": start_etcd, "probe": etcd_healthy, "healthy": "every member's /health"},
    "zookeeper": {"start": start_zookeeper, "probe": zk_healthy, "healthy": "a leader, 2 followers synced"},
    "nats": {"start": start_nats, "probe": nats_healthy, "healthy": "full route mesh"},
    "redis": {"start": start_redis, "probe": redis_healthy,
              "healthy": "primary with 2 replicas online, 3 Sentinels agreeing"},
    "rabbitmq": {"start": start_rabbitmq, "probe": rabbitmq_healthy, "prepare": rabbitmq_prepare,
                 "healthy": "cluster_status on each node: all 3 running"},
    "kafka": {"start": None, "start_ctx": kafka_start, "probe": kafka_healthy,
              "healthy": "every broker's Metadata lists all 3 brokers"},
}


def starter(ctx, ds):
    d = DATASTORES[ds]
    if d.get("start_ctx"):
        return lambda pod: d["start_ctx"](ctx, pod)
    return d["start"]


class Prober(threading.Thread):
    """Probes the cluster every PROBE_EVERY s from the node side; notes the first healthy moment.
    A thread of its own, so that a slow probe never delays a record's publication."""

    def __init__(self, probe, net, pods):
        super().__init__(daemon=True)
        self.probe, self.net, self.pods = probe, net, pods
        self.healthy_at = None
        self.final = None  # a final outcome other than healthy (e.g. a split)
        self.error = None
        self.state = {}
        self.halt = threading.Event()

    def started_once(self):
        return self.is_alive() or self.healthy_at is not None or self.final is not None or self.error is not None

    def run(self):
        while not self.halt.is_set():
            try:
                r = self.probe(self.net, self.pods, self.state)
                if r is True:
                    self.healthy_at = time.monotonic()
                    return
                if isinstance(r, str):
                    self.final = r
                    return
            except Exception as e:  # noqa: BLE001 (a probe bug must be reported, not hang the run)
                self.error = f"{type(e).__name__}: {e}"
                return
            self.halt.wait(PROBE_EVERY)

    def outcome(self, mains, past_deadline, bound_text, rec, ds):
        """The run's outcome once there is one (healthy, split..., a main exited, not healthy
        within the bound), else None."""
        dead = first_dead(mains)
        if self.healthy_at is not None:
            return "healthy"
        if self.error is not None:
            raise Failure(f"{ds}: the health probe failed: {self.error}")
        if self.final is not None:
            return self.final
        if dead:
            rec["tail"] = dead[1].tail(5)
            return f"{dead[0]} exited {dead[1].returncode}"
        if past_deadline:
            if self.state.get("views"):
                rec["last_views"] = self.state["views"]
            return f"not healthy {bound_text}"
        return None


def one_run(ctx, seq, ds, mode, offsets, bound):
    """One cluster from nothing to healthy (or not within the bound); returns the run's record."""
    start_main, probe = starter(ctx, ds), DATASTORES[ds]["probe"]
    docs = ctx["docs"][ds]
    rundir = ctx["workdir"] / f"run{seq}"  # a node of its own per run: fresh pods, volumes, DNS
    rundir.mkdir()
    net = PodNet(ctx["sup"], rundir, ctx["binary"], ctx["image"], ctx["net"],
                 prefix=f"pcbh{ctx['net']}r{seq}", name=f"run{seq}-{ds}-{mode}")
    rec = {"datastore": ds, "mode": mode, "offsets": [round(o, 3) for o in offsets],
           "load1": float(open("/proc/loadavg").read().split()[0])}
    prober = None
    pods = []
    try:
        pods = net.statefulset(docs, f"bench-{ds}", subnet=1)
        check(len(pods) == 3, f"{ds}: expected 3 replicas, the example has {len(pods)}")
        for p in pods:
            prepare(ctx, ds, p)
        if mode == "prerendered":
            for p in pods:
                p.start_init(args=with_wait(p, "none"))
            for p in pods:
                rc = p.init.wait(10)
                check(rc == 0, f"{p.name}: pre-rendering init (--wait=none) exited {rc}\n{p.init.tail()}")
        mains, started = {}, {}
        t0 = time.monotonic()
        if mode == "prerendered":
            for p in pods:
                mains[p.name] = start_main(p)
                started[p.name] = time.monotonic() - t0
        else:
            for p in pods:
                p.start_init()
        prober = Prober(probe, net, pods)
        pending = sorted(zip(offsets, range(len(pods))))
        published = {}
        deadline = t0 + max(offsets) + bound
        outcome = None
        while outcome is None:
            now = time.monotonic()
            while pending and pending[0][0] <= now - t0:
                p = pods[pending.pop(0)[1]]
                net.publish(p)
                published[p.name] = time.monotonic() - t0
            for p in pods:
                if p.name not in mains and not p.init.running():
                    check(p.init.returncode == 0, f"{p.name}: init exited {p.init.returncode}\n{p.init.tail()}")
                    mains[p.name] = start_main(p)
                    started[p.name] = time.monotonic() - t0
            if len(mains) == len(pods) and not prober.started_once():
                prober.start()
            outcome = prober.outcome(mains, now > deadline, f"{bound:.0f}s after the last record", rec, ds)
            if outcome is None:
                time.sleep(0.01)
        rec["outcome"] = outcome
        rec["healthy_s"] = round(prober.healthy_at - t0, 3) if outcome == "healthy" else None
        rec["published_s"] = published
        rec["main_started_s"] = {n: round(s, 3) for n, s in started.items()}
        return rec
    finally:
        if prober is not None:
            prober.halt.set()
            if prober.is_alive():
                prober.join(5)
        for p in pods:
            net.delete(p)
        net.close()


def pct(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[int(k)]


def cells(runs):
    out = {}
    for r in runs:
        out.setdefault((r["datastore"], r["profile"], r["mode"]), []).append(r)
    return out


def summary_rows(doc):
    """(datastore, profile, peerconf stats, prerendered stats, target text) per datastore x profile."""
    by = cells(doc["runs"])
    rows = []
    for ds in doc["datastores"]:
        for prof in doc["profiles"]:
            stats = {}
            for mode in ALL_MODES:
                rs = by.get((ds, prof, mode), [])
                ok = [r["healthy_s"] for r in rs if r["outcome"] == "healthy"]
                stats[mode] = {"n": len(rs), "ok": len(ok), "values": ok,
                               "median": statistics.median(ok) if ok else None,
                               "p90": pct(ok, 90) if ok else None,
                               "split": sum(1 for r in rs if r["outcome"].startswith("split")),
                               "exited": sum(1 for r in rs if " exited " in r["outcome"])}
            a = stats["peerconf"]
            b = stats["no-restart-policy"] if prof == "peer-gone" else stats["prerendered"]
            if not a["n"] or not b["n"]:
                verdict = "not measured"
            elif prof == "peer-gone":
                verdict = (f"peerconf healthy in {a['ok']} of {a['n']}, without it {b['ok']} of {b['n']}"
                           + (f"; median {a['median'] - b['median']:+.2f} s" if a["ok"] and b["ok"] else "")
                           + " (no target: what --wait-on-restart changes)")
            elif b["ok"] and b["ok"] < b["n"]:
                verdict = (f"{'met' if a['ok'] == a['n'] else 'missed'}: pre-rendered not healthy in "
                           f"{b['n'] - b['ok']} of {b['n']}, peerconf healthy in {a['ok']} of {a['n']}")
                if a["ok"]:
                    verdict += f"; medians of the healthy runs {a['median'] - b['median']:+.2f} s"
            elif b["ok"]:
                if a["ok"] < a["n"]:
                    verdict = f"missed: peerconf healthy in {a['ok']} of {a['n']} runs"
                else:
                    d = a["median"] - b["median"]
                    verdict = f"{'met' if d <= 0.3 else 'missed'}: median {d:+.2f} s (target <= +0.30 s)"
            else:
                verdict = (f"{'met' if a['ok'] == a['n'] else 'missed'}: pre-rendered never healthy; "
                           f"peerconf healthy in {a['ok']} of {a['n']}")
            if prof == "restart" and stats["fresh"]["ok"] and a["ok"] == a["n"] and a["n"]:
                d = a["median"] - stats["fresh"]["median"]
                verdict += f"; against an unwaited restart with no stale record: median {d:+.2f} s"
            rows.append((ds, prof, a, b, verdict))
    return rows


def fmt(st):
    if not st["n"]:
        return "-"
    s = f"{st['median']:.2f} / {st['p90']:.2f} s" if st["ok"] else "never healthy"
    if st["ok"] < st["n"]:
        bad = st["n"] - st["ok"]
        kinds = [f"{k} {what}" for k, what in ((st["split"], "split"), (st["exited"], "a main container exited"),
                                              (bad - st["split"] - st["exited"], "not formed within the bound"))
                 if k]
        s += f" (**{bad} of {st['n']} not healthy**: {', '.join(kinds)})"
    return s


def unit(prof):
    return f"{prof} s" if prof[0].isdigit() else prof


def markdown(doc):
    L = []
    w = L.append
    w(f"Run **{doc['date']}** ({doc['mode']} mode), commit `{doc.get('commit', '?')}`, binary "
      f"`{doc['binary_kind']}`, {doc['rounds']} round(s) of every cell, took {doc['duration_s']:.0f} s; "
      f"1-min load average {doc['load_start']} at the start, {doc['load_end']} at the end, "
      f"{min(r['load1'] for r in doc['runs']):.2f}-{max(r['load1'] for r in doc['runs']):.2f} at the "
      f"start of each run ({doc['nproc']} cores).")
    w("")
    w("Tier: emulated (bench/healthy.py): each pod in a network namespace of its own with the e2e "
      "harness's pod emulation (tests/harness/podnet.py), the real datastore from Debian (Kafka: "
      "Maven Central jars on the host's JRE), cluster DNS from dnsmasq; record delays injected by "
      "publishing each pod's dnsmasq record at its drawn offset after t0 (restart: the old record "
      f"served for {STALE_S:.0f} s; peer-gone: two peers' records removed, back after {GONE_S:.0f} s). "
      "Healthy means: " + "; ".join(f"{ds}: {DATASTORES[ds]['healthy']}" for ds in doc["datastores"]
                                   if ds in DATASTORES) + ".")
    w("")
    w("Time from all pods started to the cluster healthy, median / p90 of the runs that became healthy "
      f"(bound: {doc['bound']:.0f} s after the last record):")
    w("")
    w("| datastore | records at | runs per mode | with peerconf (example's policy) | "
      "pre-rendered, started at once (peer-gone: without `--wait-on-restart`) | "
      "target: peerconf median <= pre-rendered median + 0.3 s |")
    w("|---|---|---|---|---|---|")
    for ds, prof, a, b, verdict in summary_rows(doc):
        policy = doc["policies"][ds]
        if not a["n"] and not b["n"]:
            continue
        w(f"| {ds} {doc['versions'].get(ds, '')} | {unit(prof)} | {a['n']} / {b['n']} | "
          f"{fmt(a)} (`{policy}`) | {fmt(b)} | {verdict} |")
    w("")
    w("Where the time goes, medians over the healthy runs (s from all pods started): when the last "
      "record was due, the last main container's start, healthy (a cluster may be healthy before its "
      "last record appears: the runs stop there):")
    w("")
    w("| datastore | records at | mode | last record | last main started | healthy | last record -> last start | "
      "last start -> healthy |")
    w("|---|---|---|---|---|---|---|---|")
    for (ds, prof, mode), rs in sorted(cells(doc["runs"]).items()):
        ok = [r for r in rs if r["outcome"] == "healthy"]
        if not ok:
            continue
        last_pub = statistics.median(max(r["offsets"]) for r in ok)
        last_start = statistics.median(max(r["main_started_s"].values()) for r in ok)
        gap1 = statistics.median(max(r["main_started_s"].values()) - max(r["offsets"]) for r in ok)
        gap2 = statistics.median(r["healthy_s"] - max(r["main_started_s"].values()) for r in ok)
        w(f"| {ds} | {unit(prof)} | {mode} | {last_pub:.2f} | {last_start:.2f} | "
          f"{statistics.median(r['healthy_s'] for r in ok):.2f} | {gap1:+.2f} | {gap2:+.2f} |")
    w("")
    w("Every run (s from all pods started to healthy; `-` not healthy; each pair drew the same record "
      "offsets):")
    w("")
    by = cells(doc["runs"])
    for ds in doc["datastores"]:
        for prof in doc["profiles"]:
            for mode in ALL_MODES:
                rs = by.get((ds, prof, mode), [])
                if rs:
                    vals = ", ".join(f"{r['healthy_s']:.2f}" if r["healthy_s"] is not None else "-" for r in rs)
                    w(f"- {ds}, {unit(prof)}, {mode}: {vals}")
                    for r in rs:
                        if r["outcome"] != "healthy":
                            w(f"  - run with records at {', '.join(f'{o:.1f}' for o in r['offsets'])} s: "
                              f"{r['outcome']}")
    w("")
    w("Commands:")
    w("")
    w("```text")
    for c in doc["commands"]:
        w(c)
    w("```")
    return "\n".join(L) + "\n"


def versions():
    from harness.proc import run
    v = {}
    for ds, argv in [("etcd", ["etcd", "--version"]), ("nats", ["nats-server", "--version"])]:
        try:
            out = run(argv, check_rc=False).stdout
            v[ds] = out.split()[2] if ds == "etcd" else out.strip().split()[-1].lstrip("v")
        except (OSError, IndexError):
            pass
    for ds, pkg in [("zookeeper", "zookeeper"), ("redis", "redis-server"), ("rabbitmq", "rabbitmq-server")]:
        try:
            out = run(["dpkg-query", "-W", "-f=${Version}", pkg], check_rc=False).stdout
            v[ds] = out.split(":")[-1].split("-")[0]
        except OSError:
            pass
    jars = sorted(KAFKA_LIBS.glob("kafka_2.13-*.jar")) if KAFKA_LIBS.is_dir() else []
    if jars:
        v["kafka"] = jars[0].name[len("kafka_2.13-"):-len(".jar")] + " (Maven Central jars)"
    return v


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", nargs=2, metavar=("RESULTS", "OUT"))
    ap.add_argument("--merge", nargs="+", metavar="FILE",
                    help="OUT IN1 IN2...: one results file from runs of the same cells (rounds added, "
                    "loads and commands of each kept)")
    ap.add_argument("--bin", type=Path)
    ap.add_argument("--binary-kind", default="given")
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--pids-file", type=Path, help="append each child's `PID STARTTIME NAME` here "
                    "(default WORKDIR/pids); network namespaces are listed in WORKDIR/run*/netns")
    ap.add_argument("--runs", type=int, default=10, help="rounds: each round runs every cell once")
    ap.add_argument("--datastores", default="etcd,zookeeper,nats")
    ap.add_argument("--profiles", default="0-3,10-20,restart")
    ap.add_argument("--bound", type=float, default=45.0,
                    help="s after the last record within which a cluster must be healthy")
    ap.add_argument("--budget", type=float, default=0, help="start no new round after this many s (0: none)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--net", type=int, default=0,
                    help="the 10.NET.x.y pod network (default: drawn from 100-250); two runs at once need two")
    ap.add_argument("--mode-name", default="full")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--command", action="append", default=[])
    a = ap.parse_args(argv[1:])
    if a.markdown:
        Path(a.markdown[1]).write_text(markdown(json.loads(Path(a.markdown[0]).read_text())))
        return 0
    if a.merge:
        docs = [json.loads(Path(f).read_text()) for f in a.merge[1:]]
        out = dict(docs[0])
        for key in ("binary_kind", "datastores", "profiles"):
            check(all(d[key] == out[key] for d in docs), f"--merge: the files differ in {key}")
        # The example's args may differ between the invocations (say so in the table).
        out["policies"] = {ds: "` then `".join(dict.fromkeys(d["policies"][ds] for d in docs)) for ds in out["policies"]}
        out["runs"] = [r for d in docs for r in d["runs"]]
        out["rounds"] = sum(d["rounds"] for d in docs)
        out["duration_s"] = sum(d["duration_s"] for d in docs)
        out["date"] = " and ".join(d["date"] for d in docs)
        out["commit"] = ", ".join(sorted({d.get("commit", "?") for d in docs}))
        out["load_start"] = docs[0]["load_start"]
        out["load_end"] = docs[-1]["load_end"]
        out["commands"] = [c for d in docs for c in d["commands"]]
        Path(a.merge[0]).write_text(json.dumps(out, indent=1))
        return 0
    for need in ("bin", "workdir", "out"):
        if getattr(a, need) is None:
            ap.error(f"--{need} is required")
    dss = a.datastores.split(",")
    profs = a.profiles.split(",")
    for d in dss:
        check(d in DATASTORES, f"unknown datastore {d}; known: {', '.join(DATASTORES)}")
    for p in profs:
        check(p in PROFILES, f"unknown profile {p}; known: {', '.join(PROFILES)}")

    install_stop_handlers()
    workdir = a.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    sup = Supervisor(workdir / "logs", a.pids_file or workdir / "pids")
    binary = workdir / "peerconf"
    binary.write_bytes(a.bin.read_bytes())  # a private copy: others may rebuild target/ meanwhile
    os.chmod(binary, 0o755)
    ctx = {"sup": sup, "workdir": workdir, "binary": binary, "image": image_from_dockerfile(a.repo),
           "net": a.net or random.Random().randint(100, 250), "docs": {}}
    policies = {}
    for ds in dss:
        docs = kustomize(a.repo / "manifests" / "examples" / ds)
        sts = find(docs, "StatefulSet", ds)
        governing_service(docs, sts)
        ctx["docs"][ds] = docs
        args = sts["spec"]["template"]["spec"]["initContainers"][0]["args"]
        policies[ds] = " ".join(x for x in args if x.startswith(("--wait=", "--wait-on-restart=", "--own-record=",
                                                                 "--data-path="))) or "?"

    rng = random.Random(a.seed)
    t_start = time.monotonic()
    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": a.mode_name, "commit": a.commit,
           "binary_kind": a.binary_kind, "nproc": os.cpu_count(), "datastores": dss, "profiles": profs,
           "policies": policies, "versions": versions(), "bound": a.bound, "seed": a.seed,
           "load_start": " / ".join(open("/proc/loadavg").read().split()[:3]), "runs": [], "rounds": 0,
           "commands": a.command}
    errors = []
    seq = 0
    try:
        for rnd in range(a.runs):
            if a.budget and rnd and time.monotonic() - t_start > a.budget:
                print(f"healthy: budget of {a.budget:.0f}s spent: stopping after {rnd} round(s)", flush=True)
                break
            for ds in dss:
                for prof in profs:
                    lo, hi = PROFILES[prof]
                    offsets = [rng.uniform(lo, hi) for _ in range(3)]
                    modes = modes_of(prof)
                    order = list(modes) if rng.random() < 0.5 else list(reversed(modes))
                    for mode in order:
                        seq += 1
                        if prof == "restart":
                            rec = restart_run(ctx, seq, ds, mode, a.bound)
                        elif prof == "peer-gone":
                            rec = peer_gone_run(ctx, seq, ds, mode, a.bound)
                        else:
                            rec = one_run(ctx, seq, ds, mode, offsets, a.bound)
                        rec.update(profile=prof, round=rnd + 1)
                        doc["runs"].append(rec)
                        took = f"{rec['healthy_s']:.2f}s" if rec["healthy_s"] is not None else rec["outcome"]
                        print(f"healthy: round {rnd + 1} {ds:9} {prof:5} {mode:11} {took:>8}  records at "
                              f"{', '.join(f'{o:.1f}' for o in offsets)}s, load {rec['load1']:.2f}", flush=True)
                        if mode == "peerconf" and rec["outcome"] != "healthy":
                            errors.append(f"{ds} {prof} round {rnd + 1}: {rec['outcome']}")
            doc["rounds"] = rnd + 1
            doc["duration_s"] = time.monotonic() - t_start
            doc["load_end"] = " / ".join(open("/proc/loadavg").read().split()[:3])
            a.out.write_text(json.dumps(doc, indent=1))  # after each round: a cut run keeps its rounds
    except Failure as e:
        print(f"healthy: error: {e}", flush=True)
        return 1
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    finally:
        sup.stop_all()
    print(markdown(doc), flush=True)
    if errors:
        print("healthy: error: with peerconf, not healthy: " + "; ".join(errors), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
