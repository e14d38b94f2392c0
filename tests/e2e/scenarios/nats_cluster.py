"""Scenario nats-cluster: `manifests/examples/nats` as a real NATS cluster (Debian's nats-server
2.9), each server in a network namespace of its own: full route mesh, a message across it."""

import json
import random
import time

from harness import check
from harness.proc import wait_until

from .common import Cluster, example_on_podnet, log
from .datastores import boot

MESH_WITHIN = 30.0


def start_nats(pod):
    """The pod's nats container: the manifest's command and args, Debian's binary."""
    c = pod.main_container()
    argv = pod.container_argv(c, pod.container_env(c))
    check(argv[0].endswith("nats-server") and argv[1:] == ["--config", "/config/nats.conf"],
          f"nats container command is not `nats-server --config /config/nats.conf`: {argv}")
    return pod.start_image_container(c)  # Debian's nats-server for the image's


def http_get(net, pod, port, path):
    raw = net.node_ns.request(pod.ip, port, f"GET {path} HTTP/1.0\r\nHost: {pod.ip}\r\n\r\n".encode())
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


def monitor(net, pod, path):
    try:
        status, body = http_get(net, pod, 8222, path)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def routes(net, pods, pod):
    """The server names this server has routes to: /routez gives the remote server IDs (2.9 has
    no remote_name there), each server's /varz its own ID and name."""
    names = {}
    for p in pods:
        varz = monitor(net, p, "/varz")
        if varz:
            names[varz["server_id"]] = varz["server_name"]
    routez = monitor(net, pod, "/routez")
    if routez is None:
        return None
    return sorted(names.get(r["remote_id"], r["remote_id"]) for r in routez.get("routes") or [])


def full_mesh(net, pods, procs=()):
    for name, proc in procs:
        check(proc.running(), f"{name}: nats-server exited {proc.returncode}\n{proc.tail()}")
    return all(routes(net, pods, p) == sorted(q.name for q in pods if q is not p) for p in pods)


class Conn:
    """A minimal NATS client connection (the text protocol) from the node side of the bridge."""

    def __init__(self, net, pod):
        self.s = net.node_ns.connect(pod.ip, 4222, timeout=3)
        self.buf = b""
        self.expect(b"INFO ")
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"e2e"}\r\nPING\r\n')
        self.expect(b"PONG\r\n")

    def expect(self, token, timeout=3.0):
        deadline = time.monotonic() + timeout
        while token not in self.buf:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.s.recv(65536)
            check(data, "NATS server closed the connection")
            self.buf += data
        before, _, self.buf = self.buf.partition(token)
        return before

    def close(self):
        self.s.close()


def run(k: Cluster):
    """Real NATS cluster: every server routes to the others; a message crosses the cluster."""
    docs, sts, net, pods = example_on_podnet(k, "nats", "e2e-nats", 9)
    offsets = [random.uniform(0, 3) for _ in pods]
    t0 = time.monotonic()
    mains = boot(net, pods, offsets, start_nats)
    procs = [(p.name, mains[p.name]) for p in pods]
    check(wait_until(lambda: full_mesh(net, pods, procs), MESH_WITHIN, 0.2),
          f"no full route mesh {MESH_WITHIN:.0f}s on: {[routes(net, pods, p) for p in pods]}")
    log(f"full mesh {time.monotonic() - t0:.1f}s after the inits started (records at "
        f"{', '.join(f'{o:.1f}' for o in offsets)}s): /routez of each server lists the other 2 by name")
    for p in pods:
        status, body = http_get(net, p, 8222, "/healthz")
        check(status == 200, f"{p.name}: /healthz {status} {body}")

    sub, pub = Conn(net, pods[0]), Conn(net, pods[2])
    sub.s.sendall(b"SUB e2e.greeting 1\r\nPING\r\n")
    sub.expect(b"PONG\r\n")
    payload = f"hello-{random.randint(0, 1 << 30)}".encode()

    def delivered():
        # Interest crosses the routes asynchronously: publish again until it arrives.
        pub.s.sendall(b"PUB e2e.greeting %d\r\n%s\r\nPING\r\n" % (len(payload), payload))
        pub.expect(b"PONG\r\n")
        try:
            sub.expect(payload, timeout=0.3)
            return True
        except (OSError, TimeoutError):
            return False

    check(wait_until(delivered, 10, 0.1), f"a message published on {pods[2].name} never reached {pods[0].name}")
    sub.close()
    pub.close()
    log(f"subscriber on {pods[0].name} received a message published on {pods[2].name}")
    for p in pods:
        net.delete(p)
