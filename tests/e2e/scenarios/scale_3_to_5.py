"""Scenario scale-3-to-5: the documented scale procedure (kustomization.yaml `replicas:`), the
bare `kubectl scale` trap, and new and rolled pods rendering 5 peers."""

import json
import shutil
import time

import yaml

from harness import check
from harness.manifests import find, kustomize

from .common import Cluster, expect_done, expect_exit0, log, start_waiting


def consul_json(p):
    return json.loads(p.host_path("/config/consul.json").read_text())


def run(k: Cluster):
    """Scale 3 -> 5 the documented way: new and rolled pods render 5 peers, bootstrap_expect 5.

    manifests/kustomization.yaml: change `count` under `replicas:` (kustomize copies it into
    REPLICAS); then the new pods (and the rolled old ones) render 5 peers."""
    src = k.repo / "manifests"
    docs3 = kustomize(src)
    ns = "e2e-scale"
    pods = k.pods(docs3, ns, 4, range(3))
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
        p.start_init()
    for p in pods:
        expect_done(p)
    for p in pods:
        doc = consul_json(p)
        check(doc["bootstrap_expect"] == 3 and len(doc["retry_join"]) == 3, f"{p.name}: not a 3-member config")
    log("3 running pods, each rendered for 3 members")

    # The documented procedure, applied to a copy of the base.
    copy = k.workdir / "manifests-scaled"
    shutil.copytree(src, copy)
    kfile = copy / "kustomization.yaml"
    kust = yaml.safe_load(kfile.read_text())
    entries = [r for r in kust.get("replicas", []) if r.get("name") == "consul"]
    check(len(entries) == 1, "kustomization.yaml has no `replicas:` entry for consul (the documented scale knob)")
    entries[0]["count"] = 5
    kfile.write_text(yaml.safe_dump(kust, sort_keys=False))
    docs5 = kustomize(copy)
    sts5 = find(docs5, "StatefulSet", "consul")
    check(sts5["spec"]["replicas"] == 5, f"spec.replicas is {sts5['spec']['replicas']} after setting count: 5")
    env = {e["name"]: e.get("value") for e in
           next(c for c in sts5["spec"]["template"]["spec"]["initContainers"] if c["name"] == "peerconf")["env"]}
    check(env.get("REPLICAS") == "5", f"REPLICAS is {env.get('REPLICAS')!r} after the documented scale, not \"5\"")
    log("kustomization.yaml `replicas: count: 5` -> spec.replicas 5 and REPLICAS \"5\" together")

    # The trap the kustomization comment warns about: a bare `kubectl scale` keeps REPLICAS=3.
    bare = k.pod(docs3, find(docs3, "StatefulSet"), 3, k.ip(4, 30), ns)
    bare.start_init()
    rc = bare.init.wait(5)
    check(rc == 2,
          f"consul-3 with the old REPLICAS=3 exited {rc}, expected 2 (ordinal >= replicas)\n{bare.init.tail()}")
    check(not bare.host_path("/config/consul.json").exists(), "consul-3 (bare scale) wrote a file")
    log("contrast: a bare `kubectl scale` pod (REPLICAS still 3) fails fast, exit 2, nothing written")

    # Parallel: the StatefulSet controller creates consul-3 and consul-4 at once...
    new = k.pods(docs5, ns, 4, [3, 4])
    start_waiting(new, 1.5, "before its own record existed")
    for p in new:
        k.dns.publish(p.fqdn, p.ip)
        t = time.monotonic()
        log(f"published {p.fqdn} -> {p.ip}")
        expect_exit0([p], t)
    # ...and, the pod template having changed (REPLICAS), rolls consul-2, -1, -0 in turn. A
    # re-created pod gets a new IP, published when it is scheduled.
    rolled = []
    for i in (2, 1, 0):
        p = k.pod(docs5, sts5, i, k.ip(4, 41 + i), ns)
        k.dns.publish(p.fqdn, p.ip)
        p.start_init()
        expect_done(p, "rolled init")
        rolled.append(p)
    log("rolling update: consul-2, -1, -0 re-created with new IPs, inits done")
    peers = [f"consul-{i}.consul.{ns}.svc.{k.node.domain}" for i in range(5)]
    docs = []
    for p in new + rolled:
        doc = consul_json(p)
        check(doc["bootstrap_expect"] == 5, f"{p.name}: bootstrap_expect {doc['bootstrap_expect']}")
        check(doc["retry_join"] == peers, f"{p.name}: retry_join {doc['retry_join']}")
        check(doc["bind_addr"] == p.ip, f"{p.name}: bind_addr {doc['bind_addr']} != {p.ip}")
        docs.append({key: v for key, v in doc.items() if key not in ("node_name", "bind_addr", "advertise_addr")})
    check(all(d == docs[0] for d in docs), "the 5 configs differ beyond the per-pod fields")
    log("all 5 pods: bootstrap_expect 5, retry_join = the 5 FQDNs")
