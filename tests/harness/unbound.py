"""unbound as the harnesses' caching resolver: Debian's unbound in the foreground, caching every
answer (negative ones for the SOA's negative TTL) and asking a stub server for one zone, as
CoreDNS's `cache` (or NodeLocal DNSCache) sits between a pod and the cluster's records.
"""

import shutil
from pathlib import Path

from harness import dns
from harness.proc import Supervisor

CONFIG = """server:
  interface: {addr}@{port}
  port: {port}
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  access-control: ::1/128 allow
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  module-config: "iterator"
  domain-insecure: "{zone}"
  local-zone: "{zone}." nodefault
stub-zone:
  name: "{zone}"
  stub-addr: {upstream}@{upstream_port}
"""


class Unbound:
    """One unbound on addr:port forwarding `zone` to the server at upstream (addr, port); started
    and probed (an answer for probe.ZONE) before the constructor returns."""

    def __init__(self, sup: Supervisor, name, addr, port, upstream, workdir: Path, zone="cluster.local"):
        self.addr, self.port, self.zone = addr, port, zone
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "unbound.conf"
        self.config.write_text(CONFIG.format(addr=addr, port=port, dir=workdir, zone=zone,
                                             upstream=upstream[0], upstream_port=upstream[1]))
        binary = shutil.which("unbound") or "/usr/sbin/unbound"
        self.proc = sup.start(name, [binary, "-d", "-c", self.config])

        dns.await_server(self.proc, self.resolve, zone, f"unbound on {addr}:{port}")

    @property
    def server(self):
        return (self.addr, self.port)

    def resolve(self, name, qtype=dns.A, timeout=1.0):
        return dns.query(self.server, name, qtype, timeout)

    def stop(self):
        self.proc.stop()
