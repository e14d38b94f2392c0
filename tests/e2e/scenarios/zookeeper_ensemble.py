"""Scenario zookeeper-ensemble: `manifests/examples/zookeeper` as a real ZooKeeper 3.8 ensemble,
each server in a network namespace of its own, and both a follower and the leader re-created
with a new IP."""

import random
import time

from harness import check

from .common import Cluster, example_on_podnet, expect_exit0, expect_running, log
from .datastores import boot, leader_of, start_zookeeper, wait_zk_ensemble, zk_cli, zk_mode

# Measured on a 2-core machine (docs/datastores.md#zookeeper): a follower re-created (stopped by
# SIGTERM) was back 0.5-1.6 s after its server started. The leader's node lost (its network
# silent, then the pod re-created): whole again 14.2-35.0 s after the new server started, in 8
# runs: the followers need syncLimit x tickTime (10 s) to notice a silent leader, then elect.
# Bounds with head room:
FORM_BOUND = 45.0
REJOIN_BOUND = 20.0
LEADER_LOST_BOUND = 60.0


def recreate(k, net, pods, i, host, silent=False):
    """Delete pod i, let DNS still serve its old IP, bring it back with a new one: its init must
    wait (stale record) until the record changes, then ZooKeeper starts from the new files."""
    old = pods[i]
    new = net.recreate(old, net.ip(int(old.ip.split(".")[2]), host), silent)
    new.start_init()
    time.sleep(1.0)
    expect_running([new], f"while DNS still served the old IP {old.ip}")
    net.publish(new)
    t = time.monotonic()
    expect_exit0([new], t)
    pods[i] = new
    proc = start_zookeeper(new)
    return new, proc, time.monotonic()


def run(k: Cluster):
    """Real ZooKeeper ensemble: leader + 2 followers, data replicated, follower and leader back
    with new IPs."""
    docs, sts, net, pods = example_on_podnet(k, "zookeeper", "e2e-zk", 5)
    t0 = time.monotonic()
    offsets = [random.uniform(0, 3) for _ in pods]
    mains = boot(net, pods, offsets, start_zookeeper)
    log(f"3 inits done and 3 ZooKeeper servers started (records at {', '.join(f'{o:.1f}' for o in offsets)}s)")
    procs = lambda: [(p.name, mains[p.name]) for p in pods]  # noqa: E731
    ok, took, modes = wait_zk_ensemble(net, pods, FORM_BOUND, procs())
    check(ok, f"no ensemble {FORM_BOUND:.0f}s after start: {modes}")
    log(f"ensemble formed {time.monotonic() - t0:.1f}s after the inits started: {modes} (srvr/mntr)")

    value = f"v{random.randint(0, 1 << 30)}"
    writer, reader = pods[0], pods[2]
    r = zk_cli(net, writer, "create", "/peerconf-e2e", value)
    check(r.returncode == 0 and "Created /peerconf-e2e" in r.stdout + r.stderr, f"create: {r.stdout}{r.stderr}")
    r = zk_cli(net, reader, "get", "/peerconf-e2e")
    check(value in r.stdout.splitlines(), f"get on {reader.name}: {r.stdout}{r.stderr}")
    log(f"znode created through {writer.name} ({writer.fqdn}), read back through {reader.name}")

    # A follower re-created with a new IP (fresh emptyDir, same PVC), DNS still on the old IP.
    leader = leader_of(net, pods)
    check(leader is not None, "no single leader")
    i = next(j for j, p in enumerate(pods) if p is not leader)
    new, proc, started = recreate(k, net, pods, i, 40 + i)
    mains[new.name] = proc
    ok, took, modes = wait_zk_ensemble(net, pods, REJOIN_BOUND, procs())
    check(ok, f"follower {new.name} not back {REJOIN_BOUND:.0f}s after its restart with IP {new.ip}: {modes}")
    log(f"follower {new.name} re-created with IP {new.ip}: ensemble whole {time.monotonic() - started:.1f}s "
        f"after its server started: {modes}")
    r = zk_cli(net, new, "get", "/peerconf-e2e")
    check(value in r.stdout.splitlines(), f"get on re-created {new.name}: {r.stdout}{r.stderr}")

    # The leader's node lost (no FIN reaches the followers), the pod re-created with a new IP:
    # the measured slow case.
    leader = leader_of(net, pods)
    check(leader is not None, "no single leader")
    i = pods.index(leader)
    new, proc, started = recreate(k, net, pods, i, 50 + i, silent=True)
    mains[new.name] = proc
    ok, took, modes = wait_zk_ensemble(net, pods, LEADER_LOST_BOUND, procs())
    check(ok, f"leader {new.name} re-created with IP {new.ip}: ensemble not whole {LEADER_LOST_BOUND:.0f}s "
              f"after its server started: {modes}")
    log(f"leader {new.name} (node lost: network silent) re-created with IP {new.ip}: ensemble whole "
        f"{time.monotonic() - started:.1f}s after its server started (bound {LEADER_LOST_BOUND:.0f}s): {modes}")
    check(zk_mode(net, new) in ("leader", "follower"), f"{new.name} not serving")
    for p in pods:
        net.delete(p)
