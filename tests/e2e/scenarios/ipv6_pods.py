"""Scenario ipv6-pods: an IPv6-only StatefulSet. The shipped etcd example runs with IPv6 pod IPs
against a real DNS server listening on [::1]:53 (dnsmasq, AAAA records from its hosts directory):
peers with AAAA records only resolve, the stale-record guard holds an init back while its own
name still carries an old pod's IPv6 address, and the rendered listen URLs are valid URLs (Python's
urllib.parse finds the pod IP as their host)."""

import json
import time
from urllib.parse import urlsplit

from harness import check
from harness.dnsmasq import Dnsmasq
from harness.manifests import find, kustomize
from harness.pods import Node, Pod
from harness.proc import wait_until

from .common import NOTICE, Cluster, expect_exit0, expect_running, log, no_output


def run(k: Cluster):
    """IPv6-only pods: AAAA-only peers resolve on [::1]:53, stale IPv6 own record waited out, URLs valid.

    The etcd example (--wait=all) with IPv6 pod IPs and only AAAA records, served by dnsmasq on
    [::1]:53: two inits finish once every name resolves; the third waits while its own name still
    carries an old pod's address, and finishes once it changes; every listen URL is bracketed."""
    sup = k.node.sup
    # The pods' resolv.conf says `nameserver ::1`, which means port 53.
    v6dns = Dnsmasq(sup, "dnsmasq-v6", "::1", 53, k.workdir / "dns-v6" / "hosts",
                    query_log=k.workdir / "dns-v6" / "dnsmasq.log")
    node = Node(k.workdir, sup, k.node.binary, k.node.image, "::1")
    log("dnsmasq on [::1]:53 serves cluster.local from its hosts directory (AAAA records only)")
    docs = kustomize(k.repo / "manifests" / "examples" / "etcd")
    sts = find(docs, "StatefulSet", "etcd")
    ns = "e2e-ipv6"
    ips = [f"fd00:{k.net}::{11 + i}" for i in range(3)]
    pods = [Pod(node, docs, sts, i, ips[i], ns) for i in range(3)]
    stale = f"fd00:{k.net}::99"
    for p in pods:
        v6dns.publish(p.fqdn, stale if p.ordinal == 1 else p.ip, wait=False)
    for p in pods:
        want = stale if p.ordinal == 1 else p.ip
        got = v6dns.resolve(p.fqdn, "AAAA")
        check(got.addrs == [want], f"dnsmasq on ::1 does not serve {p.fqdn} AAAA {want}: {got}")
        check(v6dns.resolve(p.fqdn).addrs == [], f"{p.fqdn} has an A record: the scenario is not IPv6-only")
    log(f"published AAAA records; {pods[1].fqdn} still has the old pod's {stale}")
    mark = v6dns.log_mark()
    started = time.monotonic()
    for p in pods:
        p.start_init()
    expect_exit0([pods[0], pods[2]], started, within=NOTICE + 2)
    time.sleep(2.0)
    expect_running([pods[1]], f"while its own name still resolved to the old {stale}")
    out = pods[1].host_path("/config/etcd.json")
    no_output(pods[1], out)
    check(stale in pods[1].init.stderr(), f"{pods[1].name}: the log does not name the stale {stale}\n"
                                          f"{pods[1].init.tail()}")
    log(f"{pods[1].name} still waits 2s later, nothing written, its log names the stale {stale}")
    v6dns.publish(pods[1].fqdn, pods[1].ip, wait=False)
    check(wait_until(lambda: v6dns.resolve(pods[1].fqdn, "AAAA").addrs == [pods[1].ip], 2.0, 0.01),
          f"dnsmasq on ::1 does not serve {pods[1].fqdn} AAAA {pods[1].ip}")
    log(f"record updated: {pods[1].fqdn} -> {pods[1].ip}")
    expect_exit0([pods[1]], time.monotonic())

    asked = v6dns.queried_names(mark)
    check(any(t == "AAAA" for t, _ in asked), f"no AAAA query reached dnsmasq on ::1: {asked[:6]}")
    check(all(n.endswith(".cluster.local") and n.count(".") >= 5 for _, n in asked),
          f"a query was not a peer's absolute name: {sorted(set(asked))[:6]}")
    for p in pods:
        doc = json.loads(p.host_path("/config/etcd.json").read_text())
        for key, port in [("listen-peer-urls", 2380), ("listen-client-urls", 2379), ("listen-metrics-urls", 2381)]:
            url = doc[key].split(",")[0]
            parts = urlsplit(url)
            check(parts.hostname == p.ip and parts.port == port and url == f"http://[{p.ip}]:{port}",
                  f"{p.name}: {key} {url!r} is not a URL whose host is {p.ip} (urllib: {parts.hostname!r}:{parts.port})")
    log("every pod's listen URLs are http://[<its IPv6 address>]:<port>, and urllib.parse agrees")
    v6dns.stop()
