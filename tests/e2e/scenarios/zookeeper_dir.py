"""Scenario zookeeper-dir: `manifests/examples/zookeeper` in directory mode, zoo.cfg and myid
rendered for each pod and readable where the ZooKeeper container's subPath mounts expect them."""

import os
import re
import time

from harness import check
from harness.manifests import find, kustomize

from .common import Cluster, expect_exit0, governing_service, log, start_waiting


def run(k: Cluster):
    """ZooKeeper directory mode: zoo.cfg server.N lines and myid for each of 3 pods."""
    docs = kustomize(k.repo / "manifests" / "examples" / "zookeeper")
    sts = find(docs, "StatefulSet", "zookeeper")
    governing_service(docs, sts)
    ns = "e2e-zk"
    pods = k.pods(docs, ns, 5, range(sts["spec"]["replicas"]))
    check(len(pods) == 3, "zookeeper: expected 3 replicas")
    cm_vol = next(m for m in pods[0].init_container()["volumeMounts"] if m["mountPath"] == "/readonly")
    keys = sorted(n for n in os.listdir(pods[0].volumes[cm_vol["name"]]) if not n.startswith("."))
    check(keys == ["myid", "zoo.cfg"], f"ConfigMap keys {keys}")
    start_waiting(pods, 1.0, "with no records")
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
    t = time.monotonic()
    log("published the 3 records")
    expect_exit0(pods, t)
    want = [f"server.{i + 1}=zookeeper-{i}.zookeeper.{ns}.svc.{k.node.domain}:2888:3888;2181" for i in range(3)]
    cfgs = []
    for p in pods:
        out = p.host_path("/config")
        names = sorted(os.listdir(out))
        check(names == ["myid", "zoo.cfg"], f"{p.name}: emptyDir holds {names}")
        myid = (out / "myid").read_text()
        check(re.fullmatch(r"\d+\n?", myid) and int(myid) == p.ordinal + 1, f"{p.name}: myid {myid!r}")
        cfg = (out / "zoo.cfg").read_text()
        check("{{" not in cfg and "{%" not in cfg, f"{p.name}: template syntax left in zoo.cfg")
        servers = [line.strip() for line in cfg.splitlines() if line.strip().startswith("server.")]
        check(servers == want, f"{p.name}: server lines {servers} != {want}")
        for line in cfg.splitlines():
            s = line.strip()
            check(not s or s.startswith("#") or re.fullmatch(r"[\w.]+=\S.*", s), f"{p.name}: bad zoo.cfg line {line!r}")
        # Where the zookeeper container looks (subPath mounts): both files exist and are readable.
        main = p.main_container()
        for m in main.get("volumeMounts", []):
            if m.get("subPath"):
                f = p.volumes[m["name"]] / m["subPath"]
                check(f.is_file(), f"{p.name}: {m['mountPath']} (subPath {m['subPath']}) has no file")
                check(p.can_read(f), f"{p.name}: the zookeeper user cannot read {m['subPath']}")
        cfgs.append([line for line in cfg.splitlines() if not line.startswith("#")])
    check(all(c == cfgs[0] for c in cfgs), "zoo.cfg differs between pods beyond comments")
    log("each pod: zoo.cfg with server.1-3 = the 3 FQDNs :2888:3888;2181, myid = ordinal+1, "
        "readable where the zookeeper container mounts them")
