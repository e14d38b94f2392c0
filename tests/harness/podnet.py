"""Pods with their own network namespace and IP, and the cluster DNS that serves them: the
primitive the datastore scenarios (tests/e2e) and "time to a healthy cluster" benchmarks share.

    net = PodNet(sup, workdir, binary, image, net=123)   # bridge + dnsmasq at 10.123.0.53:53
    pods = net.statefulset(docs, "ns", subnet=1)          # one Pod per replica, each its own netns
    for p in pods: p.start_init(); net.publish(p)          # the record appears (dnsmasq, atomic)
    p2 = net.recreate(pods[1], host=21)                   # same name and PVCs, new IP, new netns
    net.close()                                           # every namespace deleted

Each pod is a `harness.pods.Pod` whose containers run in its network namespace, with the pod's
resolv.conf naming this network's dnsmasq. dnsmasq runs on the node side of the bridge and
serves `cluster.local` from a hosts directory of its own, so records are published exactly as
with the loopback suite (harness.dnsmasq). The harness reaches pods through `net.node` (a
socket or a command on the node side of the bridge).
"""

from __future__ import annotations

from pathlib import Path

from harness import check
from harness.dnsmasq import Dnsmasq
from harness.manifests import find
from harness.netns import Network
from harness.pods import Node, Pod, mkdir, with_resolv


class PodNet:
    def __init__(self, sup, workdir: Path, binary, image, net, prefix=None, name="podnet"):
        self.sup = sup
        self.workdir = Path(workdir)
        self.base = mkdir(self.workdir / name)
        self.network = Network(prefix or f"pc{net}", net, self.workdir / "netns")
        self.node_ns = self.network.node
        self.dns_ip = self.network.ip(0, 53)
        self.network.node_address(self.dns_ip)
        self.dns = Dnsmasq(sup, f"dnsmasq-{name}", self.dns_ip, 53, self.base / "hosts",
                           query_log=self.base / "dnsmasq.log", netns=self.node_ns)
        self.node = Node(self.workdir, sup, binary, image, self.dns_ip)
        resolv = self.base / "resolv.conf"
        resolv.write_text(f"search svc.cluster.local cluster.local\nnameserver {self.dns_ip}\n")
        resolv.chmod(0o644)
        self.resolv = resolv

    def ip(self, subnet, host):
        return self.network.ip(subnet, host)

    def pod(self, docs, sts, ordinal, namespace, ip) -> Pod:
        return Pod(self.node, docs, sts, ordinal, ip, namespace, netns=self.network.add_pod(ip))

    def statefulset(self, docs, namespace, subnet, name=None, ordinals=None, host_base=11):
        """One pod per ordinal (default: every replica) of the StatefulSet, at 10.<net>.<subnet>.<11+i>."""
        sts = find(docs, "StatefulSet", name)
        ordinals = range(sts["spec"]["replicas"]) if ordinals is None else ordinals
        return [self.pod(docs, sts, i, namespace, self.ip(subnet, host_base + i)) for i in ordinals]

    def publish(self, pod, wait=True):
        """The endpoints controller publishes the pod's record (its current IP)."""
        self.dns.publish(pod.fqdn, pod.ip, wait)

    def unpublish(self, pod):
        self.dns.unpublish(pod.fqdn)

    def delete(self, pod):
        """The pod is deleted: its processes stop (by PID) and its IP (namespace) is gone. Its
        PVCs stay; its DNS record stays until the next publish (as a lagging endpoints update)."""
        pod.stop()
        if pod.netns is not None and pod.netns in self.network.pods:
            self.network.remove_pod(pod.netns)

    def cut(self, pod):
        """The pod's node is lost: its network goes silent (no FIN, no RST reaches the peers)
        while its processes still exist; `delete` then stops them."""
        pod.netns.run(["ip", "link", "set", "eth0", "down"])

    def recreate(self, pod, ip, silent=False) -> Pod:
        """The StatefulSet controller re-creates a deleted pod: same name, ordinal and PVCs, new
        uid, fresh emptyDirs, a new IP. `silent`: the old pod's node was lost (see `cut`)."""
        if silent:
            self.cut(pod)
        self.delete(pod)
        check(ip != pod.ip, "a re-created pod needs a new IP here")
        return self.pod(pod.docs, pod.sts, pod.ordinal, pod.namespace, ip)

    def node_cmd(self, argv, resolv=True):
        """argv as a command run on the node side of the bridge, resolving through the cluster DNS
        (a tool that talks to the pods: etcdctl, redis-cli, zkCli...)."""
        argv = with_resolv(self.resolv, argv) if resolv else list(argv)
        return [*self.node_ns.exec_prefix(), *argv]

    def close(self):
        self.dns.stop()
        self.network.close()

    def leftovers(self):
        return self.network.leftovers()
