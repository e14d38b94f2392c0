"""Scenario caching-resolver: a caching resolver (Debian's unbound) between the pods and the
cluster's records, as CoreDNS's `cache` or NodeLocal DNSCache is in a real cluster. The records'
server (dnsmasq, authoritative for cluster.local) gives NXDOMAIN answers a negative TTL of
NEGATIVE_TTL s through its SOA; unbound caches them that long.

What is asserted, per pod of the shipped Consul base (--wait=quorum, --max-interval 1s):
  - the records, published right after the inits' first NXDOMAIN, stay hidden behind unbound
    (it still answers NXDOMAIN) and show through it no later than NEGATIVE_TTL s after;
  - each init exits no earlier than the names its quorum needs show through unbound, and no later
    than that plus one polling interval (--max-interval, 1 s) plus SLACK for process scheduling;
  - each init's log names the negative TTL it read from the SOA.
It prints every measured figure (hidden for, detected after), the numbers docs/caching-dns.md
quotes."""

import re
import time

from harness import check, dns
from harness.dnsmasq import Dnsmasq
from harness.manifests import find, kustomize
from harness.pods import Node, Pod
from harness.proc import wait_until
from harness.unbound import Unbound

from .common import Cluster, expect_running, log

NEGATIVE_TTL = 5
POLL_INTERVAL = 1.0  # the manifests' --max-interval (peerconf's default)
SLACK = 0.5  # process start-up and scheduling on a loaded 2-core machine; measured 0.0-0.1 s
TTL_RE = re.compile(r"may cache 'no such name' for up to (\d+)s")
AUTH_QUERY_RE = re.compile(r"auth\[A\] (\S+) from")  # dnsmasq's query log in --auth-zone mode


def log_since(server, mark):
    with open(server.query_log, "rb") as f:
        f.seek(mark)
        return f.read().decode(errors="replace")


def run(k: Cluster):
    """Caching resolver in the path: detection within negative TTL expiry + one interval.

    unbound caches dnsmasq's NXDOMAIN answers (negative TTL 5 s from the SOA); records published
    just after the inits' first queries must be detected no later than the cached answer expires
    plus one polling interval, and the inits' logs name the negative TTL."""
    sup = k.node.sup
    auth_addr = k.ip(54, 53)
    auth = Dnsmasq(sup, "dnsmasq-auth", auth_addr, dns.free_port(auth_addr), k.workdir / "dns-auth" / "hosts",
                   query_log=k.workdir / "dns-auth" / "dnsmasq.log", auth_ttl=NEGATIVE_TTL)
    # Port 53: a resolv.conf nameserver line has no port.
    cache = Unbound(sup, "unbound", k.ip(55, 53), 53, auth.server, k.workdir / "unbound")
    log(f"dnsmasq authoritative for cluster.local on {auth_addr}:{auth.port} (--auth-ttl {NEGATIVE_TTL}); "
        f"unbound caching in front of it on {cache.addr}:53")
    node = Node(k.workdir, sup, k.node.binary, k.node.image, cache.addr)

    docs = kustomize(k.repo / "manifests")
    sts = find(docs, "StatefulSet", "consul")
    ns = "e2e-cache"
    pods = [Pod(node, docs, sts, i, k.ip(56, 11 + i), ns) for i in range(3)]
    mark = auth.log_mark()
    for p in pods:
        p.start_init()
    # Every init has asked (through unbound) for every name: unbound now holds their NXDOMAINs.
    asked = wait_until(lambda: {p.fqdn for p in pods} <= set(AUTH_QUERY_RE.findall(log_since(auth, mark))), 10.0)
    check(asked, "the inits' queries never reached the authoritative server through unbound")
    expect_running(pods, "with no record published")
    for p in pods:
        auth.publish(p.fqdn, p.ip)  # checked against dnsmasq itself, not through the cache
    published = time.monotonic()
    log(f"published {', '.join(p.name for p in pods)} right after the inits' first NXDOMAIN")
    hidden_now = [p.name for p in pods if cache.resolve(p.fqdn).rcode == dns.NXDOMAIN]
    check(hidden_now, "unbound served the new records at once: nothing was cached, the scenario proves nothing")
    log(f"through unbound, still NXDOMAIN (cached): {', '.join(hidden_now)}")

    # When does each record show through unbound? (Asking after expiry refreshes the cache, as the
    # inits' own next query would.)
    visible = {}
    while len(visible) < len(pods) and time.monotonic() < published + NEGATIVE_TTL + 2:
        for p in pods:
            if p.name not in visible and cache.resolve(p.fqdn).addrs == [p.ip]:
                visible[p.name] = time.monotonic()
        time.sleep(0.02)
    for p in pods:
        check(p.name in visible, f"{p.fqdn} did not show through unbound within {NEGATIVE_TTL + 2}s")
        hidden = visible[p.name] - published
        log(f"{p.fqdn}: hidden by the cache for {hidden:.2f}s after it was published")
        # unbound keeps time in whole seconds: an answer cached at t lives until the second after
        # t + TTL (measured here: 5.0-5.5 s for a 5 s TTL).
        check(hidden <= NEGATIVE_TTL + 1.0, f"{p.fqdn} was hidden {hidden:.2f}s, longer than the negative TTL + 1 s")

    # Quorum: its own name and one other.
    for p in pods:
        others = min(visible[o.name] for o in pods if o is not p)
        needed = max(visible[p.name], others)
        bound = needed + POLL_INTERVAL + SLACK
        rc = p.init.wait(max(0.0, bound - time.monotonic()))
        check(rc == 0, f"{p.name}: init did not exit 0 by {bound - published:.2f}s after publishing "
                       f"(exit {rc})\n{p.init.tail()}")
        lag = p.init.exited_at - needed
        check(lag >= -0.05, f"{p.name}: init exited {-lag:.2f}s before its names showed through unbound")
        log(f"{p.name}: init exited {p.init.exited_at - published:.2f}s after publishing, "
            f"{lag:.2f}s after its quorum showed through the cache (bound {POLL_INTERVAL + SLACK:.1f}s)")
        said = TTL_RE.findall(p.init.stderr())
        check(len(said) == 1 and 1 <= int(said[0]) <= NEGATIVE_TTL,
              f"{p.name}: the log does not name the negative TTL once (found {said})\n{p.init.tail()}")
    log(f"every init's log names the negative TTL it read: {', '.join(TTL_RE.findall(pods[0].init.stderr()))}s")
    cache.stop()
    auth.stop()
