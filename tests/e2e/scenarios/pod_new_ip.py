"""Scenario pod-new-ip: a pod re-created with a new IP while DNS still serves its old one."""

import json
import time

from harness import check
from harness.manifests import find, kustomize

from .common import Cluster, expect_done, expect_exit0, expect_running, log, no_output


def run(k: Cluster):
    """Pod deleted, new IP: the init waits while DNS serves the old IP, done once it changes.

    A pod is deleted and comes back with a new IP while DNS still serves the old one: its
    init must wait (stale-record guard) and finish once the record changes."""
    docs = kustomize(k.repo / "manifests")
    ns = "e2e-stale"
    pods = k.pods(docs, ns, 3, range(3))
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
    old = pods[1]
    old.start_init()
    expect_done(old, "first init")
    log(f"{old.name} ran once with {old.ip}; the pod is deleted, its record still says {old.ip}")

    new = k.pod(docs, find(docs, "StatefulSet"), 1, k.ip(3, 22), ns)  # same name, new uid, IP, emptyDir
    out = new.host_path("/config/consul.json")
    new.start_init()
    log(f"new {new.name} started with POD_IP {new.ip}")
    time.sleep(3.0)
    expect_running([new], f"while its own name still resolved to the old IP {old.ip}")
    no_output(new, out)
    check(old.ip in new.init.stderr(),
          f"{new.name}: the wait never logged the stale address {old.ip}:\n{new.init.tail()}")
    log(f"still waiting after 3s, nothing written, log names the stale address {old.ip}")
    k.dns.publish(new.fqdn, new.ip)
    t = time.monotonic()
    log(f"record updated: {new.fqdn} -> {new.ip}")
    expect_exit0([new], t)
    doc = json.loads(out.read_text())
    check(doc["bind_addr"] == new.ip and doc["advertise_addr"] == new.ip,
          f"bind/advertise {doc['bind_addr']}/{doc['advertise_addr']}, expected the new IP {new.ip}")
    log(f"consul.json binds and advertises the new IP {new.ip}")
