"""Scenario redis-sentinel: `manifests/examples/redis` as real Redis 7.0 replication with Sentinel
(Debian's redis-server and redis-sentinel), each pod in a network namespace of its own: the
primary lists its replicas by FQDN, a key written on the primary is read on both replicas, the
Sentinels agree on the primary by name, and when the primary's redis-server is stopped they
promote a replica, which takes writes that the other replica receives. The old primary's pod is
then re-created with a new IP, its config saying "primary" again: the Sentinels make it a
replica of the new primary."""

from __future__ import annotations

import random
import time

from harness import check
from harness.proc import wait_until

from .common import NOTICE, Cluster, example_on_podnet, log
from .datastores import boot

REDIS_BIN = "redis-server"  # the manifest's programs; Debian's 7.0 in their place (harness/images.py)
SENTINEL_BIN = "redis-sentinel"
MASTER = "redis"  # the `sentinel monitor` name: the StatefulSet's name in the template
# Bounds with head room; the measured times are in docs/datastores.md#redis.
FORM_BOUND = 30.0
# down-after-milliseconds (5 s in the example) + the Sentinels' vote + the promotion.
FAILOVER_BOUND = 40.0
REJOIN_BOUND = 60.0


def start_container(pod, name, binary):
    """One of the pod's containers as the manifest says (`redis-server /config/redis.conf`,
    `redis-sentinel /config/sentinel.conf`; `binary` is the program the manifest must name), with
    Debian's binary from the image table."""
    c = pod.main_container(name)
    argv = pod.container_argv(c, pod.container_env(c))
    check(argv[0] == binary.rsplit("/", 1)[-1] and len(argv) == 2 and argv[1].startswith("/config/"),
          f"{pod.name}: {name} container command is not `{argv[0]} /config/...`: {argv}")
    return pod.start_image_container(c)


def start_pod(pod):
    return {"redis": start_container(pod, "redis", REDIS_BIN),
            "sentinel": start_container(pod, "sentinel", SENTINEL_BIN)}


def resp(net, pod, port, *args, timeout=2.0):
    """One command over RESP from the node side of the bridge; the reply as Python values
    (an error reply as an Exception instance), or None if the server cannot be reached."""
    payload = b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a)
                                                     for a in (str(x).encode() for x in args)])
    try:
        with net.node_ns.connect(pod.ip, port, timeout) as s:
            s.sendall(payload)
            f = s.makefile("rb")
            return _read(f)
    except OSError:
        return None


def _read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise OSError(f"unexpected reply {line!r}")


def info(net, pod, section="replication"):
    text = resp(net, pod, 6379, "INFO", section)
    if not isinstance(text, str):
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def replicas_of(fields):
    """The replicas a primary lists (INFO replication slaveN:ip=...,state=online): {host: state}."""
    out = {}
    for k, v in fields.items():
        if k.startswith("slave") and k[5:].isdigit():
            kv = dict(part.split("=", 1) for part in v.split(","))
            out[kv["ip"]] = kv["state"]
    return out


def sentinel_view(net, pod):
    """(primary host this Sentinel names, number of replicas, number of other Sentinels)."""
    addr = resp(net, pod, 26379, "SENTINEL", "get-master-addr-by-name", MASTER)
    m = resp(net, pod, 26379, "SENTINEL", "master", MASTER)
    if not isinstance(addr, list) or not isinstance(m, list):
        return None
    fields = dict(zip(m[::2], m[1::2]))
    return addr[0], int(fields.get("num-slaves", -1)), int(fields.get("num-other-sentinels", -1))


def formed(net, pods, procs):
    for name, proc in procs():
        check(proc.running(), f"{name} exited {proc.returncode}\n{proc.tail()}")
    primary, others = pods[0], pods[1:]
    if info(net, primary).get("role") != "master":
        return False
    if replicas_of(info(net, primary)) != {p.fqdn: "online" for p in others}:
        return False
    if any(info(net, p).get("master_link_status") != "up" for p in others):
        return False
    want = (primary.fqdn, len(others), len(pods) - 1)
    return all(sentinel_view(net, p) == want for p in pods)


def read_everywhere(net, pods, key, value, within=10.0):
    ok = wait_until(lambda: all(resp(net, p, 6379, "GET", key) == value for p in pods), within, 0.1)
    check(ok, f"{key} not {value!r} on every server {within:.0f}s on: "
              f"{ {p.name: resp(net, p, 6379, 'GET', key) for p in pods} }")


def run(k: Cluster):
    """Real Redis + Sentinel: replicas by FQDN, a key replicated, a replica promoted when the
    primary's process stops."""
    docs, sts, net, pods = example_on_podnet(k, "redis", "e2e-redis", 10)
    offsets = [random.uniform(0, 3) for _ in pods]
    t0 = time.monotonic()
    mains = boot(net, pods, offsets, start_pod)
    procs = lambda: [(f"{p.name} {c}", proc) for p in pods for c, proc in mains[p.name].items()]  # noqa: E731
    check(wait_until(lambda: formed(net, pods, procs), FORM_BOUND, 0.1),
          f"not formed {FORM_BOUND:.0f}s on: primary lists {replicas_of(info(net, pods[0]))}; Sentinels: "
          f"{ {p.name: sentinel_view(net, p) for p in pods} }")
    log(f"formed {time.monotonic() - t0:.1f}s after the inits started (records at "
        f"{', '.join(f'{o:.1f}' for o in offsets)}s): {pods[0].name} primary listing both replicas by FQDN, "
        "online; each Sentinel names the primary by FQDN and sees 2 replicas and 2 other Sentinels")

    key, value = "peerconf:e2e", f"v{random.randint(0, 1 << 30)}"
    check(resp(net, pods[0], 6379, "SET", key, value) == "OK", f"SET on {pods[0].name}")
    read_everywhere(net, pods, key, value)
    r = resp(net, pods[1], 6379, "SET", key, "x")
    check(isinstance(r, Exception) and "READONLY" in str(r), f"a replica accepted a write: {r!r}")
    log(f"key set on {pods[0].name} read back on {pods[1].name} and {pods[2].name}; replicas refuse writes")

    # The primary's redis-server stops (its process, by PID); its pod and its Sentinel stay.
    old = pods[0]
    mains[old.name]["redis"].stop()
    stopped = time.monotonic()
    rest = pods[1:]
    state = {}

    def promoted():
        views = {p.name: sentinel_view(net, p) for p in pods}
        roles = {p.name: info(net, p).get("role") for p in rest}
        state.update(views=views, roles=roles)
        new = [p for p in rest if roles[p.name] == "master"]
        return (len(new) == 1 and all(v is not None and v[0] == new[0].fqdn for v in views.values())
                and info(net, [p for p in rest if p is not new[0]][0]).get("master_host") == new[0].fqdn
                and new[0])

    primary = wait_until(promoted, FAILOVER_BOUND, 0.2)
    check(primary, f"no replica promoted {FAILOVER_BOUND:.0f}s after {old.name}'s redis-server stopped: {state}")
    log(f"{old.name}'s redis-server stopped: {primary.name} promoted {time.monotonic() - stopped:.1f}s later; "
        f"all 3 Sentinels name {primary.fqdn}, the other replica follows it")
    other = next(p for p in rest if p is not primary)
    read_everywhere(net, rest, key, value)
    value2 = f"v{random.randint(0, 1 << 30)}"
    check(resp(net, primary, 6379, "SET", key, value2) == "OK", f"SET on the new primary {primary.name}")
    read_everywhere(net, [other], key, value2)
    log(f"the key survived; a write on {primary.name} reached {other.name}")

    # The old primary's pod is deleted and re-created (same PVC, new IP, fresh emptyDir): its
    # rendered redis.conf says "primary" again. The Sentinels must turn it into a replica of the
    # new primary, by its name.
    net.delete(old)
    new0 = net.pod(old.docs, old.sts, old.ordinal, old.namespace, net.ip(10, 40))
    pods[0] = new0
    new0.start_init()
    net.publish(new0)
    check(new0.init.wait(NOTICE + 2) == 0, f"{new0.name}: init exited {new0.init.returncode}\n{new0.init.tail()}")
    mains[new0.name] = start_pod(new0)
    restarted = time.monotonic()

    def rejoined():
        me = info(net, new0)
        state.update(me=me, views={p.name: sentinel_view(net, p) for p in pods},
                     listed=replicas_of(info(net, primary)))
        return (me.get("role") == "slave" and me.get("master_host") == primary.fqdn
                and me.get("master_link_status") == "up"
                and state["listed"] == {p.fqdn: "online" for p in pods if p is not primary}
                and all(v is not None and v[0] == primary.fqdn for v in state["views"].values()))

    check(wait_until(rejoined, REJOIN_BOUND, 0.2),
          f"{new0.name} re-created with IP {new0.ip} not a replica of {primary.name} {REJOIN_BOUND:.0f}s after "
          f"its servers started: {state}")
    log(f"{new0.name} re-created with IP {new0.ip} (its config says primary): a replica of {primary.name} "
        f"{time.monotonic() - restarted:.1f}s after its servers started; all 3 Sentinels name {primary.name}")
    read_everywhere(net, [new0], key, value2)
    for p in pods:
        net.delete(p)
