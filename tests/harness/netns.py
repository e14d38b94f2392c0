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
    caller adds with `node_address()` (the cluster DNS server listens on one).

    The bridge has a MAC address of its own, set when it is created. Without one, Linux gives a
    bridge the lowest MAC of its ports and changes it as ports come and go: deleting the pod whose
    veth lent br0 its MAC left every other pod's ARP entry for the node's addresses pointing at a
    MAC that no longer exists, so those pods could not reach the cluster DNS server or the node
    (the harness's etcdctl, four-letter words) until the entry expired and was probed again, 30 s
    and more. On a real node the gateway's MAC does not move when a pod is deleted; here neither
    does br0's, and every add or remove of a pod checks it."""

    def __init__(self, prefix, net, record: Path):
        self.prefix = prefix
        self.net = net
        self.record = Path(record)
        self.seq = 0
        self.pods: list[NetNs] = []
        self.node = self._create(f"{prefix}-node")
        self.node.ip = self.ip(0, 1)
        # Locally administered (02:...) and unicast; the network's number makes it this run's.
        self.bridge_mac = f"02:00:0a:{net:02x}:00:01"
        self.node.run(["ip", "link", "add", "br0", "address", self.bridge_mac, "type", "bridge"])
        self._check_bridge_mac("creating the bridge")
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

    def _check_bridge_mac(self, when):
        """The node's side of the pod network keeps its MAC address whatever pods come and go."""
        r = self.node.run(["cat", "/sys/class/net/br0/address", "/sys/class/net/br0/addr_assign_type"])
        mac, assign_type = r.stdout.split()
        # addr_assign_type 3 (NET_ADDR_SET): set explicitly, so the kernel never replaces it.
        check(mac == self.bridge_mac and assign_type == "3",
              f"br0's MAC is {mac} (addr_assign_type {assign_type}) after {when}, not the {self.bridge_mac} "
              "it was given: pods would keep sending to a MAC that no longer exists")

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
        self._check_bridge_mac(f"adding {ns.name}")
        return ns

    def remove_pod(self, ns: NetNs):
        """Delete a pod's namespace (its processes must have been stopped): its IP is gone."""
        run(["ip", "netns", "delete", ns.name])
        self.pods.remove(ns)
        self._check_bridge_mac(f"deleting {ns.name}")

    def selfcheck(self, pods=3):
        """Prove the pod network before trusting it: every pod reaches the node (a TCP connect to
        10.<net>.0.1, where the cluster DNS also listens), and all still do after each pod in
        turn is deleted and replaced by one with a new IP, as in the restart scenarios."""
        listener = self.node.socket()
        added = []
        try:
            listener.bind((self.node.ip, 0))
            listener.listen(64)
            port = listener.getsockname()[1]
            host = iter(range(1, 255))

            def reach(when):
                for ns in added:
                    try:
                        ns.connect(self.node.ip, port, timeout=2.0).close()
                    except OSError as e:
                        raise Failure(f"pod network: {ns.name} ({ns.ip}) cannot reach the node "
                                      f"{self.node.ip}:{port} {when}: {e}") from None

            added += [self.add_pod(self.ip(255, next(host))) for _ in range(pods)]
            reach("once created")
            for _ in range(pods):
                gone = added.pop(0)
                self.remove_pod(gone)
                added.append(self.add_pod(self.ip(255, next(host))))
                reach(f"after {gone.name} ({gone.ip}) was deleted and a pod added")
        finally:
            listener.close()
            for ns in added:
                self.remove_pod(ns)

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
