"""What every e2e scenario shares: the Cluster it runs in (node, DNS, this run's addresses) and
the timed log and the assertions about init containers that the scenarios make alike."""

import os
import time

from harness import check
from harness.manifests import find, kustomize
from harness.pods import Pod

# Upper bound for "the init noticed the record": --max-interval (1 s, the manifests keep the
# default) plus scheduling slack on a loaded 2-core machine. Measured here: 0.1-1.0 s.
NOTICE = 5.0

_scenario_t0 = [time.monotonic()]


def start_clock():
    """The scenario starts now: log() times are counted from here."""
    _scenario_t0[0] = time.monotonic()
    return _scenario_t0[0]


def log(msg):
    print(f"   +{time.monotonic() - _scenario_t0[0]:6.2f}s {msg}", flush=True)


class Cluster:
    """What a scenario gets: the node that runs pods, the cluster DNS (dnsmasq), the repository,
    the work dir, and this run's 127.<net>.<subnet>.<host> pod addresses."""

    def __init__(self, node, dns, repo, net):
        self.node = node
        self.dns = dns
        self.repo = repo
        self.workdir = node.workdir
        self.net = net
        self._podnet = None
        self._podnets = 0

    def podnet(self):
        """This scenario's pod network (harness.podnet): pods each in a network namespace of their
        own, with a 10.<net>.x.y IP and a dnsmasq of that network; created on first use, for the
        scenarios that run real datastores (which listen on fixed ports, 0.0.0.0 and 127.0.0.1),
        deleted by `close()` at the end of the scenario."""
        if self._podnet is None:
            from harness.podnet import PodNet
            self._podnets += 1
            self._podnet = PodNet(self.node.sup, self.workdir, self.node.binary, self.node.image, self.net,
                                  prefix=f"pce2e{self.net}s{self._podnets}", name=f"podnet{self._podnets}")
        return self._podnet

    def close(self):
        """Delete the scenario's pod network (its processes stopped first); the namespaces left."""
        if self._podnet is None:
            return []
        net, self._podnet = self._podnet, None
        net.close()
        return net.leftovers()

    def ip(self, subnet, host):
        return f"127.{self.net}.{subnet}.{host}"

    def pod(self, docs, sts, ordinal, ip, namespace):
        return Pod(self.node, docs, sts, ordinal, ip, namespace)

    def pods(self, docs, namespace, subnet, ordinals, ip_base=11):
        sts = find(docs, "StatefulSet")
        return [self.pod(docs, sts, i, self.ip(subnet, ip_base + i), namespace) for i in ordinals]


def governing_service(docs, sts):
    svc = find(docs, "Service", sts["spec"]["serviceName"])
    check(svc["spec"].get("clusterIP") == "None", f"Service {svc['metadata']['name']} is not headless")
    check(svc["spec"].get("publishNotReadyAddresses") is True,
          f"Service {svc['metadata']['name']}: publishNotReadyAddresses is not true, so no pod record "
          "would exist before the pods are Ready and this suite's publishing would be a lie")
    return svc


def example_on_podnet(k, example, ns, subnet):
    """manifests/examples/EXAMPLE's kustomize output, its StatefulSet (named as the directory),
    its governing Service checked, and the StatefulSet's 3 pods on a fresh pod network.
    Returns (docs, sts, net, pods)."""
    docs = kustomize(k.repo / "manifests" / "examples" / example)
    sts = find(docs, "StatefulSet", example)
    governing_service(docs, sts)
    net = k.podnet()
    pods = net.statefulset(docs, ns, subnet=subnet)
    check(len(pods) == 3, f"{example}: expected 3 replicas")
    return docs, sts, net, pods


def expect_running(pods, why):
    for p in pods:
        check(p.init.running(), f"{p.name}: init exited {p.init.returncode} {why}\n{p.init.tail()}")


def start_waiting(pods, secs, why):
    """Start the pods' inits at once (Parallel), and check `secs` later that all still wait."""
    for p in pods:
        p.start_init()
    time.sleep(secs)
    expect_running(pods, why)


def expect_exit0(pods, after, within=NOTICE):
    """Each init exits 0, at or after `after` (a monotonic time) and within `within` s of it."""
    for p in pods:
        rc = p.init.wait(max(0.0, after + within - time.monotonic()))
        check(rc is not None, f"{p.name}: init still running {within}s after its policy was met\n{p.init.tail()}")
        check(rc == 0, f"{p.name}: init exited {rc}\n{p.init.tail()}")
        check(p.init.exited_at >= after, f"{p.name}: init exited before its policy could be met")
        log(f"{p.name}: init exited 0, {p.init.exited_at - after:.2f}s after the record that met its policy")


def expect_done(p, what="init"):
    """An init whose records all exist already exits 0 within NOTICE (+2 s for the start)."""
    check(p.init.wait(NOTICE + 2) == 0, f"{p.name}: {what} exited {p.init.returncode}\n{p.init.tail()}")


def no_output(p, path):
    check(not path.exists(), f"{p.name}: {path.name} written while the init was still waiting")


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(".") and n != "..")
