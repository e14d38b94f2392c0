"""What the real-datastore scenarios share: each datastore's container as its image would run
it, with Debian's program standing in for the image's, and the steps of a pod's life (init,
record, main container) on the pod network (harness.podnet).

Every way the run differs from the manifest's image (the Debian binary's path and the files of
the image that the host provides: JRE config, log4j config) is in the one image table,
tests/harness/images.py, which the start functions go through (Pod.start_image_container);
nothing else of the manifest is changed."""

from __future__ import annotations

import os
import random
import time

from harness import check, images
from harness.images import ZK_CLI
from harness.proc import wait_until

from .common import NOTICE, log

# bench/healthy.py takes the JRE's files from here (the Kafka cells): the image table's.
JAVA_FILES = images.JAVA_FILES


def start_zookeeper(pod):
    """The pod's zookeeper container: no command in the manifest, so the image's default
    (`zkServer.sh start-foreground`, as the image table runs it)."""
    c = pod.main_container()
    check(not (c.get("command") or c.get("args")), f"{pod.name}: zookeeper has a command; expected the image's")
    return pod.start_image_container(c)


def with_wait(pod, policy):
    """The init container's args with another --wait policy (None: as the manifest says)."""
    args = pod.init_container()["args"]
    if policy is None:
        return None
    check(any(a.startswith("--wait=") for a in args), f"{pod.name}: no --wait=... in the init args {args}")
    return [f"--wait={policy}" if a.startswith("--wait=") else a for a in args]


# E2E_WAIT=POLICY: boot the datastores with this --wait policy instead of the example's, to
# measure what waiting changes (docs/datastores.md#when-does-waiting-help). Unset in CI.
WAIT_OVERRIDE = os.environ.get("E2E_WAIT") or None


def boot(net, pods, offsets=None, start_main=None, wait=WAIT_OVERRIDE):
    """Start every pod's init at once (with another --wait policy if `wait`), publish each pod's
    record (at `offsets[i]` s after the start, default at once), and start each main container
    (`start_main(pod)`) as soon as its init exits 0. Returns {pod name: main process}."""
    offsets = offsets or [0.0] * len(pods)
    t0 = time.monotonic()
    for p in pods:
        p.start_init(args=with_wait(p, wait))
    pending_pub = sorted(zip(offsets, range(len(pods))))
    mains = {}
    deadline = t0 + max(offsets) + NOTICE + 5
    while len(mains) < len(pods) or pending_pub:
        now = time.monotonic() - t0
        while pending_pub and pending_pub[0][0] <= now:
            net.publish(pods[pending_pub.pop(0)[1]])
        for p in pods:
            if p.name not in mains and not p.init.running():
                check(p.init.returncode == 0, f"{p.name}: init exited {p.init.returncode}\n{p.init.tail()}")
                mains[p.name] = start_main(p)
        check(time.monotonic() < deadline, "inits not done "
              f"{NOTICE + 5:.0f}s after the last record: {[p.name for p in pods if p.name not in mains]}")
        time.sleep(0.02)
    return mains


def random_offsets(n, spread=3.0, rng=random):
    return [rng.uniform(0, spread) for _ in range(n)]


def four_letter(net, pod, word, timeout=2.0):
    try:
        return net.node_ns.request(pod.ip, 2181, word.encode(), timeout)
    except OSError as e:
        return f"<{e}>"


def zk_mode(net, pod):
    for line in four_letter(net, pod, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return None


def zk_ensemble(net, pods):
    """(modes by pod name, True when one leader, the rest followers and the leader has them all synced)."""
    modes = {p.name: zk_mode(net, p) for p in pods}
    leaders = [p for p in pods if modes[p.name] == "leader"]
    if len(leaders) != 1 or sorted(map(str, modes.values())) != sorted(["leader"] + ["follower"] * (len(pods) - 1)):
        return modes, False
    mntr = four_letter(net, leaders[0], "mntr")
    synced = [line for line in mntr.splitlines() if line.startswith("zk_synced_followers")]
    return modes, bool(synced) and synced[0].split()[-1] == str(len(pods) - 1)


def wait_zk_ensemble(net, pods, timeout, procs=()):
    t = time.monotonic()
    state = {}

    def whole():
        for name, proc in procs:
            check(proc.running(), f"{name}: zookeeper exited {proc.returncode}\n{proc.tail()}")
        state["modes"], ok = zk_ensemble(net, pods)
        return ok

    ok = wait_until(whole, timeout, 0.1)
    return ok, time.monotonic() - t, state.get("modes")


def zk_cli(net, pod, *args, timeout=30):
    from harness.proc import run
    return run(net.node_cmd([*ZK_CLI, "-server", f"{pod.fqdn}:2181", *args]), timeout=timeout, check_rc=False)


def leader_of(net, pods):
    found = [p for p in pods if zk_mode(net, p) == "leader"]
    return found[0] if len(found) == 1 else None


def logged(what):
    log(what)
