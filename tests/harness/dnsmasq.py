"""dnsmasq as the harnesses' real DNS server: one zone, kept local, records from a hosts directory.

With `auth_ttl=N` it serves the zone authoritatively instead (`--auth-zone`): NXDOMAIN then carries
the zone's SOA with a negative TTL of N s, which a caching resolver in front of it honours.
A Dnsmasq may serve inside a network namespace (a harness.netns.Network's node side): it is
then started through `ip netns exec` and asked from a socket in that namespace.

With `--local=/ZONE/ --no-resolv --no-hosts` a name of the zone that no file lists is NXDOMAIN.
Records live in `--hostsdir` files of `IP NAME` lines, read through inotify: a file renamed into
place is served by the very next query, dot-files are ignored, a deleted file makes the name
NXDOMAIN again. Publishing is therefore a dot-file written, then renamed into place, which is
what the endpoints controller's update looks like to a pod: atomic.
"""

import os
import re
import shutil
from pathlib import Path

from harness import Failure, check, dns
from harness.proc import Supervisor, wait_until

QUERY_RE = re.compile(r"query\[(\w+)\] (\S+) from")


class Dnsmasq:
    """One dnsmasq process on addr:port, started and probed (NXDOMAIN for probe.ZONE) before the
    constructor returns; Failure, with its stderr, if it does not answer within 5 s."""

    def __init__(self, sup: Supervisor, name, addr, port, hostsdir: Path, zone="cluster.local",
                 query_log: Path | None = None, extra=(), auth_ttl: int | None = None,
                 netns=None):
        self.addr, self.port, self.zone = addr, port, zone
        self.netns = netns  # a harness.netns.NetNs to serve in (and be asked from), or None
        self.hostsdir = Path(hostsdir)
        self.hostsdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.hostsdir, 0o755)  # dnsmasq reads it as nobody
        self.query_log = query_log
        self.argv = [
            shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--pid-file=", f"--listen-address={addr}", f"--port={port}",
            "--no-resolv", "--no-hosts", f"--hostsdir={self.hostsdir}",
        ]
        if auth_ttl is None:
            self.argv += ["--bind-interfaces", f"--local=/{zone}/"]
        else:
            # Authoritative for the zone: NXDOMAIN carries the zone's SOA, whose negative TTL (and
            # every record's TTL) is auth_ttl, so a caching resolver in front caches "no such name".
            self.argv += ["--bind-dynamic", f"--auth-zone={zone}", f"--auth-server=ns.{zone},{addr}",
                          f"--auth-ttl={auth_ttl}"]
        if query_log is not None:
            self.argv += ["--log-queries", f"--log-facility={query_log}"]
        self.argv += list(extra)
        self.proc = sup.start(name, [*(netns.exec_prefix() if netns else []), *self.argv])

        dns.await_server(self.proc, self.resolve, zone, f"dnsmasq on {addr}:{port}")

    @property
    def server(self):
        return (self.addr, self.port)

    def command(self):
        """The command line as a person would type it."""
        return " ".join(["dnsmasq", *self.argv[1:]])

    def resolve(self, name, qtype=dns.A, timeout=1.0):
        return dns.query(self.server, name, qtype, timeout, self.netns)

    def publish(self, fqdn, ip, wait=True):
        """Serve fqdn -> ip (replacing any earlier record of that name): a dot-file, renamed into
        place. With wait, returns once a query sees it (Failure after 2 s)."""
        key = fqdn.rstrip(".")
        tmp = self.hostsdir / f".{key}.tmp"
        tmp.write_text(f"{ip} {key}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hostsdir / key)
        if wait:
            served = wait_until(lambda: self.resolve(key) == (dns.NOERROR, [ip]), 2.0, 0.01)
            check(served, f"dnsmasq does not serve {key} -> {ip} (got {self.resolve(key)})")

    def unpublish(self, fqdn):
        (self.hostsdir / fqdn.rstrip(".")).unlink(missing_ok=True)

    def log_mark(self):
        """Where the query log ends now, for queried_names(since=...)."""
        try:
            return self.query_log.stat().st_size
        except FileNotFoundError:
            return 0

    def queried_names(self, since=0, until=None):
        """[(type, name)] of the queries logged between two log_mark()s."""
        with open(self.query_log, "rb") as f:
            f.seek(since)
            chunk = f.read(-1 if until is None else max(0, until - since))
        return QUERY_RE.findall(chunk.decode(errors="replace"))

    def stop(self):
        self.proc.stop()


def start_on_first_free(sup: Supervisor, name, addrs, port, hostsdir: Path, **kwargs):
    """A Dnsmasq on the first of `addrs` where it starts (port 53 is often taken on some)."""
    last = None
    for addr in addrs:
        try:
            return Dnsmasq(sup, name, addr, port, hostsdir, **kwargs)
        except Failure as e:
            last = e
    raise Failure(f"dnsmasq started on none of {addrs[0]} .. {addrs[-1]} port {port}; last: {last}")
