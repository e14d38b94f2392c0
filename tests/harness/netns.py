"""A pod network of our own: pods that each have a network namespace and an IP, as on a node.

A `Network` is a network namespace holding a Linux bridge (the node's pod network); each pod
gets a network namespace of its own, joined to the bridge by a veth pair, with its own IP and
its own loopback. So several servers can all listen on 0.0.0.0:2181 or 127.0.0.1:2379, as they
would in their pods, and a pod re-created with a new IP is a new namespace. Nothing is added to
the machine's own network namespace: test traffic stays on the bridge and the pods' loopbacks.

Every namespace is named `<prefix>-...`, and its name is appended to a record file before it is
created, so a shell trap can delete the leftovers if the Python driver is killed hard
(tests/e2e/run.sh does). `Network.close()` deletes every namespace it created; the processes
inside must have been stopped first (by PID, by the Supervisor).

Processes run in a namespace through `ip netns exec NAME`, which setns()es and execs: the PID
the Supervisor records is the program's. The harness itself talks into a namespace through
`NetNs.socket()`, a socket created by a thread that entered the namespace (a socket stays in the
namespace it was created in).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from pathlib import Path

from harness import Failure, check
from harness.proc import run

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_names():
    r = run(["ip", "netns", "list"], check_rc=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


class NetNs:
    """One network namespace (by name, as `ip netns` knows it)."""

    def __init__(self, name, ip=None):
        self.name = name
        self.ip = ip

    def exec_prefix(self):
        """The argv prefix that runs a command in this namespace (setns, then exec)."""
        return ["ip", "netns", "exec", self.name]

    def run(self, argv, **kwargs):
        return run([*self.exec_prefix(), *argv], **kwargs)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket in this namespace, usable from any thread of the harness."""
        result = {}

        def enter():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name}")
                finally:
                    os.close(fd)
                result["sock"] = socket.socket(family, type)
            except OSError as e:
                result["err"] = e

        t = threading.Thread(target=enter)  # setns moves only this (short-lived) thread
        t.start()
        t.join()
        if "err" in result:
            raise result["err"]
        return result["sock"]

    def connect(self, addr, port, timeout=2.0):
        s = self.socket()
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
        except OSError:
            s.close()
            raise
        return s

    def request(self, addr, port, payload: bytes, timeout=2.0):
        """Send `payload` on a TCP connection from this namespace and read until the peer closes
        (a ZooKeeper four-letter word, a Redis inline command followed by QUIT...)."""
        with self.connect(addr, port, timeout) as s:
            s.sendall(payload)
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    return b"".join(chunks).decode(errors="replace")
                chunks.append(data)


class Network:
    """A bridge in a namespace of its own (the node side) and pods attached to it.

    Addresses are 10.<net>.<subnet>.<host>/16; the node side holds 10.<net>.0.1 and anything the
    caller adds with `node_address()` (the cluster DNS server listens on one)."""

    def __init__(self, prefix, net, record: Path):
        self.prefix = prefix
        self.net = net
        self.record = Path(record)
        self.seq = 0
        self.pods: list[NetNs] = []
        self.node = self._create(f"{prefix}-node")
        self.node.ip = self.ip(0, 1)
        self.node.run(["ip", "link", "add", "br0", "type", "bridge"])
        self.node.run(["ip", "addr", "add", f"{self.node.ip}/16", "dev", "br0"])
        self.node.run(["ip", "link", "set", "br0", "up"])

    def ip(self, subnet, host):
        check(0 <= subnet <= 255 and 1 <= host <= 254, f"no pod address 10.{self.net}.{subnet}.{host}")
        return f"10.{self.net}.{subnet}.{host}"

    def _create(self, name):
        check(name not in netns_names(), f"network namespace {name} exists already")
        with open(self.record, "a") as f:
            f.write(name + "\n")
        run(["ip", "netns", "add", name])
        ns = NetNs(name)
        ns.run(["ip", "link", "set", "lo", "up"])
        return ns

    def node_address(self, ip):
        """Another address on the node side of the bridge (e.g. for a DNS server)."""
        self.node.run(["ip", "addr", "add", f"{ip}/16", "dev", "br0"])

    def add_pod(self, ip) -> NetNs:
        """A new pod network namespace with this IP on eth0, joined to the bridge."""
        self.seq += 1
        ns = self._create(f"{self.prefix}-p{self.seq}")
        ns.ip = ip
        port = f"veth{self.seq}"
        self.node.run(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name])
        self.node.run(["ip", "link", "set", port, "master", "br0", "up"])
        ns.run(["ip", "addr", "add", f"{ip}/16", "dev", "eth0"])
        ns.run(["ip", "link", "set", "eth0", "up"])
        self.pods.append(ns)
        return ns

    def remove_pod(self, ns: NetNs):
        """Delete a pod's namespace (its processes must have been stopped): its IP is gone."""
        run(["ip", "netns", "delete", ns.name])
        self.pods.remove(ns)

    def close(self):
        problems = []
        for ns in [*self.pods, self.node]:
            r = run(["ip", "netns", "delete", ns.name], check_rc=False)
            if r.returncode != 0:
                problems.append(f"{ns.name}: {r.stderr.strip()}")
        self.pods = []
        if problems:
            raise Failure(f"could not delete network namespaces: {problems}")

    def leftovers(self):
        return [n for n in netns_names() if n.startswith(self.prefix + "-")]
