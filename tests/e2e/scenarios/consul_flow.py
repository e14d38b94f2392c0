"""Scenario consul-flow: the shipped Consul base (`manifests/`, --wait=quorum) from a Parallel
start with no records to three right consul.json files, one record at a time."""

import json
import time

from harness import Failure, check
from harness.manifests import find, kustomize

from .common import Cluster, expect_exit0, expect_running, governing_service, leftovers, log, no_output


def run(k: Cluster):
    """Consul flow: Parallel start with no records, records one by one, quorum met, files right.

    All 3 pods start at once while DNS has no records; records appear one by one; each init
    exits 0 only once its quorum policy is met, never before; the rendered files are right."""
    docs = kustomize(k.repo / "manifests")
    sts = find(docs, "StatefulSet", "consul")
    governing_service(docs, sts)
    check(sts["spec"].get("podManagementPolicy") == "Parallel", "consul: podManagementPolicy is not Parallel")
    replicas = sts["spec"]["replicas"]
    check(replicas == 3, f"consul: spec.replicas is {replicas}, the scenario expects the shipped 3")
    ns = "e2e-consul"
    pods = k.pods(docs, ns, 1, range(replicas))
    args = pods[0].init_container().get("args", [])
    check("--wait=quorum" in args or ("--wait" in args and args[args.index("--wait") + 1] == "quorum"),
          f"consul init args do not ask for --wait quorum: {args}")
    outputs = [p.host_path("/config/consul.json") for p in pods]
    for p in pods:
        check(k.dns.resolve(p.fqdn).rcode == 3, f"{p.fqdn} resolves before the scenario published it")
    mark = k.dns.log_mark()
    for p in pods:  # Parallel: all at once
        p.start_init()
    log(f"started {', '.join(p.name for p in pods)} at once; DNS has none of their names")
    time.sleep(2.0)
    expect_running(pods, "with no record published at all")
    for p, out in zip(pods, outputs, strict=True):
        no_output(p, out)
    asked = {n for _, n in k.dns.queried_names(mark)}
    for p in pods:
        check(p.fqdn in asked, f"{p.name}: its own name was never asked for while waiting")
    log("all 3 still waiting after 2s, nothing written, DNS is being asked")

    # quorum of 3 is 2: a pod needs its own name (with its IP) and one other.
    k.dns.publish(pods[0].fqdn, pods[0].ip)
    log(f"published {pods[0].fqdn} -> {pods[0].ip}")
    time.sleep(2.0)
    expect_running(pods, "with only consul-0's record published (quorum is 2)")
    for p, out in zip(pods, outputs, strict=True):
        no_output(p, out)
    log("consul-0 has itself but no second peer; consul-1/2 lack their own names: all waiting")

    k.dns.publish(pods[1].fqdn, pods[1].ip)
    t1 = time.monotonic()
    log(f"published {pods[1].fqdn} -> {pods[1].ip}")
    expect_exit0(pods[:2], t1)
    time.sleep(max(0.0, t1 + 2.0 - time.monotonic()))
    expect_running(pods[2:], "before its own record existed (quorum counts this pod's own name)")
    no_output(pods[2], outputs[2])
    log("consul-2 still waiting for its own name 2s later")

    k.dns.publish(pods[2].fqdn, pods[2].ip)
    t2 = time.monotonic()
    log(f"published {pods[2].fqdn} -> {pods[2].ip}")
    expect_exit0(pods[2:], t2)

    peers = [p.fqdn for p in pods]
    rendered = []
    for p, out in zip(pods, outputs, strict=True):
        check(out.exists(), f"{p.name}: no {out}")
        try:
            doc = json.loads(out.read_text())
        except ValueError as e:
            raise Failure(f"{p.name}: consul.json is not valid JSON: {e}") from None
        check(doc.get("node_name") == p.name, f"{p.name}: node_name {doc.get('node_name')!r}")
        check(doc.get("bind_addr") == p.ip and doc.get("advertise_addr") == p.ip,
              f"{p.name}: bind/advertise {doc.get('bind_addr')}/{doc.get('advertise_addr')}, pod IP {p.ip}")
        check(doc.get("retry_join") == peers, f"{p.name}: retry_join {doc.get('retry_join')} != {peers}")
        check(doc.get("bootstrap_expect") == 3 and type(doc["bootstrap_expect"]) is int,
              f"{p.name}: bootstrap_expect {doc.get('bootstrap_expect')!r} is not the number 3")
        st = out.stat()
        check(st.st_mode & 0o777 == 0o640, f"{p.name}: mode {oct(st.st_mode & 0o777)}, expected 0640")
        check(p.can_read(out), f"{p.name}: the consul container's user cannot read {out}")
        check(leftovers(out.parent) == [], f"{p.name}: temp files left in the emptyDir: {leftovers(out.parent)}")
        common = {key: v for key, v in doc.items() if key not in ("node_name", "bind_addr", "advertise_addr")}
        rendered.append(common)
    check(all(r == rendered[0] for r in rendered), "consul.json differs between pods beyond node_name/bind/advertise")
    log("3 valid consul.json: same but node_name/bind_addr/advertise_addr; retry_join = the 3 FQDNs; "
        "bootstrap_expect 3; mode 0640, readable by the consul user via fsGroup")

    # What the inits asked DNS: the peers' absolute names only, despite ndots:5 and the search list.
    asked = k.dns.queried_names(mark)
    strays = sorted({n for _, n in asked if n not in peers})
    check(not strays, f"queries for names other than the peers (search-list expansion?): {strays[:5]}")
    log(f"{len(asked)} DNS queries in all, every one for a peer's absolute name (no search-list expansion)")
