"""Scenario rabbitmq-cluster: `manifests/examples/rabbitmq` as a real RabbitMQ cluster (Debian's
rabbitmq-server 3.10, Erlang 25), each node in a network namespace of its own: the Erlang cookie
comes from a Secret volume through `--secret` and `--mode .erlang.cookie=0400`, written by the
init container running as the server's uid; three nodes form one cluster; a queue declared on one
node is listed by another; a pod re-created with a new IP comes back with its data and rejoins.
The init container sees the first boot and the restart through `--data-path` (the mnesia
directory, on the data volume mounted read-only in the init).

How this differs from the manifest's image, all in `start_rabbitmq()`: Debian's
/usr/lib/rabbitmq/bin/rabbitmq-server stands in for the image's; epmd (which `erl` would start
as a daemon, outside the harness's reach) is started first as a process of the pod's own, so the
harness can stop it by PID; the Secret volume, which the pod emulation does not materialise, is
laid out here as the kubelet would (root-owned, group fsGroup, defaultMode 0440).

E2E_WAIT=none and E2E_RABBITMQ_RECORDS=10-20 (seconds after the inits start, default 0-3) turn
it into one run of the with/without measurement of docs/datastores.md (E2E_RABBITMQ_FORMATION_ONLY=1
stops after formation, E2E_RABBITMQ_FORM_WITHIN=S bounds it): the RESULT line says whether the
nodes formed one cluster or split."""

import json
import os
import random
import time

from harness import check
from harness.proc import wait_until

from .common import Cluster, example_on_podnet, log
from .datastores import boot

COOKIE_KEY = "cookie"
FORM_WITHIN = float(os.environ.get("E2E_RABBITMQ_FORM_WITHIN", "120"))


def lay_out_secret(pod, value):
    """The Secret volume `cookie` as the kubelet writes it: key `cookie`, root-owned, group
    fsGroup, defaultMode from the manifest."""
    vol = next(v for v in pod.spec["volumes"] if "secret" in v)
    path = pod.volume(vol["name"]) / COOKIE_KEY
    path.write_text(value)
    os.chown(path, 0, pod.fs_group)
    os.chmod(path, vol["secret"].get("defaultMode", 0o644))
    return path


def start_rabbitmq(pod):
    """The pod's rabbitmq container: the manifest's command and env, Debian's server."""
    c = pod.main_container()
    check(c.get("command") == ["rabbitmq-server"], f"rabbitmq command is not rabbitmq-server: {c.get('command')}")
    cookie = pod.host_path("/config/.erlang.cookie", c)
    st = os.stat(cookie)
    check(st.st_mode & 0o777 == 0o400 and st.st_uid == pod.ids(c)[0],
          f"{pod.name}: .erlang.cookie is {oct(st.st_mode & 0o777)} owned by {st.st_uid}, "
          f"not 0400 owned by the server's uid {pod.ids(c)[0]}")
    pod.epmd = pod.start_image_container(c, argv=["epmd"])
    check(wait_until(lambda: os.path.exists(f"/proc/{pod.epmd.pid}"), 2, 0.05), "epmd did not start")
    time.sleep(0.3)
    check(pod.epmd.running(), f"{pod.name}: epmd exited {pod.epmd.returncode}\n{pod.epmd.tail()}")
    return pod.start_image_container(c, argv=["rabbitmq-server"])


def ctl(pod, *args, timeout=60):
    """rabbitmqctl in the pod's rabbitmq container (as `kubectl exec` would run it): its env
    names the node (rabbitmq-env.conf) and its HOME the cookie. (rc, stdout, stderr)"""
    c = pod.main_container()
    proc = pod.start_image_container(c, argv=["rabbitmqctl", *args])
    rc = proc.wait(timeout)
    if rc is None:
        proc.kill()
    return rc, proc.stdout(), proc.stderr()


def running_nodes(pod):
    rc, out, _ = ctl(pod, "--formatter", "json", "cluster_status", timeout=30)
    if rc != 0:
        return None
    try:
        return sorted(json.loads(out).get("running_nodes") or [])
    except ValueError:
        return None


def node_name(pod):
    return f"rabbit@{pod.fqdn}"


def listening(net, pod, timeout=1.0):
    """Does the node accept AMQP connections? RabbitMQ opens its listener at the end of its boot
    (after it joined a cluster or booted alone): a cheap test before rabbitmqctl (1-3 s a call)."""
    try:
        with net.node_ns.connect(pod.ip, 5672, timeout):
            return True
    except OSError:
        return False


def cluster_views(pods):
    """running_nodes as each pod's rabbitmqctl cluster_status lists them, asked in parallel
    (None where the call failed)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(len(pods)) as ex:
        return list(ex.map(running_nodes, pods))


def record_offsets(n):
    spec = os.environ.get("E2E_RABBITMQ_RECORDS", "0-3")
    lo, hi = (float(x) for x in spec.split("-"))
    return [random.uniform(lo, hi) for _ in range(n)]


def run(k: Cluster):
    """Real RabbitMQ cluster: cookie through --secret, one cluster of 3, a queue seen from another node, a re-created pod rejoins."""
    docs, sts, net, pods = example_on_podnet(k, "rabbitmq", "e2e-rabbitmq", 12)
    cookie = f"e2e-cookie-{random.getrandbits(64):016x}"
    for p in pods:
        lay_out_secret(p, cookie)
    offsets = record_offsets(len(pods))
    t0 = time.monotonic()
    mains = boot(net, pods, offsets, start_rabbitmq)
    for p in pods:
        init_log = p.init.stdout() + p.init.stderr()
        check(cookie not in init_log, f"{p.name}: the init container's output holds the cookie")
        check("/var/lib/rabbitmq/mnesia: does not exist (a first boot)" in init_log,
              f"{p.name}: the init did not see a first boot (--data-path)\n{p.init.tail()}")
    want = sorted(node_name(p) for p in pods)
    seen = {}

    def formed():
        for name, proc in mains.items():
            check(proc.running(), f"{name}: rabbitmq-server exited {proc.returncode}\n{proc.tail(30)}")
        for p in pods:
            seen[p.name] = running_nodes(p)
        return all(v == want for v in seen.values())

    ok = wait_until(formed, FORM_WITHIN, 1.0)
    took = time.monotonic() - t0
    records = ", ".join(f"{o:.1f}" for o in offsets)
    if not ok:
        # Split: two nodes that answer and list different running members. A node whose
        # cluster_status fails (None) is "not formed", not counted as a split.
        split = len({tuple(v) for v in seen.values() if v is not None}) > 1
        log(f"RESULT rabbitmq split={split} records at {records}s: running_nodes per pod {seen}")
    check(ok, f"no single cluster of 3 within {FORM_WITHIN:.0f}s: running_nodes per pod {seen}")
    log(f"RESULT rabbitmq split=False formed {took:.1f}s after the inits started (records at {records}s): "
        "cluster_status on each node lists all 3 running")

    if os.environ.get("E2E_RABBITMQ_FORMATION_ONLY"):
        for p in pods:
            net.delete(p)
        return
    qname = f"e2e-{random.randint(0, 1 << 30)}"
    declare = (f'rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>, queue, <<"{qname}">>), true, false, [], none, '
               '<<"e2e">>).')
    rc, out, err = ctl(pods[0], "eval", declare)
    check(rc == 0 and "{new," in out, f"declaring {qname} on {pods[0].name}: rc={rc}\n{out}\n{err}")

    def listed():
        rc, out, _ = ctl(pods[2], "-q", "list_queues", "name", timeout=30)
        return rc == 0 and qname in out.split()

    check(wait_until(listed, 20, 1.0), f"queue {qname} declared on {pods[0].name} not listed by {pods[2].name}")
    log(f"queue {qname} declared on {pods[0].name} is listed by {pods[2].name}")

    # The pod comes back with a new IP, its PVC (mnesia, named after the stable FQDN) and a fresh
    # emptyDir: the init renders again, the node rejoins with its data.
    old = pods[1]
    new = net.recreate(old, net.ip(12, 31))
    lay_out_secret(new, cookie)
    pods[1] = new
    t1 = time.monotonic()
    net.publish(new)
    new.start_init()
    check(new.init.wait(30) == 0, f"{new.name}: init exited {new.init.returncode}\n{new.init.tail()}")
    check("/var/lib/rabbitmq/mnesia: exists (a restart)" in new.init.stdout() + new.init.stderr(),
          f"{new.name}: the init did not see a restart (--data-path)\n{new.init.tail()}")
    mains = {p.name: (start_rabbitmq(p) if p is new else mains[p.name]) for p in pods}
    check(wait_until(formed, FORM_WITHIN, 1.0),
          f"{new.name} with new IP {new.ip} did not rejoin within {FORM_WITHIN:.0f}s: {seen}")
    check(wait_until(lambda: (lambda r: r[0] == 0 and qname in r[1].split())(
        ctl(new, "-q", "list_queues", "name", timeout=30)), 20, 1.0),
        f"{new.name} does not list {qname} after it rejoined")
    log(f"{new.name} re-created with new IP {new.ip} rejoined {time.monotonic() - t1:.1f}s later; "
        f"cluster_status on each lists all 3 and {new.name} lists {qname}")
    for p in pods:
        net.delete(p)
