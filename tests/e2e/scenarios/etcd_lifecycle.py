"""Scenarios etcd-restart-new-ip, etcd-member-lost, etcd-lost-volume: `manifests/examples/etcd`
through a cluster's life, with real etcd members each in a network namespace of its own (so the
rendered file runs unchanged: every pod has its own 127.0.0.1), and PVCs that outlive pods."""

from __future__ import annotations

import json
import random
import time

from harness import check
from harness.manifests import find
from harness.proc import run as run_cmd
from harness.proc import wait_until

from .common import NOTICE, Cluster, example_on_podnet, expect_exit0, expect_running, log, no_output
from .datastores import boot

ETCD_ENV = {"ETCDCTL_API": "3"}
HEALTHY_WITHIN = 30.0


def start_etcd(pod):
    """The pod's etcd container: the manifest's command and args, Debian's etcd binary."""
    c = pod.main_container()
    argv = pod.container_argv(c, pod.container_env(c))
    check(argv[0].endswith("/etcd") and argv[1:] == ["--config-file=/config/etcd.json"],
          f"etcd container command is not `etcd --config-file=/config/etcd.json`: {argv}")
    return pod.start_image_container(c)  # Debian's etcd 3.4 for the image's /usr/local/bin/etcd


def etcdctl(net, pods, *args, timeout=15):
    endpoints = ",".join(f"http://{p.fqdn}:2379" for p in pods)
    return run_cmd(net.node_cmd(["env", *(f"{k}={v}" for k, v in ETCD_ENV.items()), "etcdctl",
                                 "--dial-timeout=1s", "--command-timeout=3s", f"--endpoints={endpoints}", *args]),
                   timeout=timeout, check_rc=False)


def healthy(net, pods, procs=()):
    """True once `endpoint health` reports every given endpoint healthy."""
    for name, proc in procs:
        check(proc.running(), f"{name}: etcd exited {proc.returncode}\n{proc.tail()}")
    r = etcdctl(net, pods, "endpoint", "health")
    return r.returncode == 0 and sum("is healthy" in line for line in (r.stdout + r.stderr).splitlines()) == len(pods)


def wait_healthy(net, pods, procs, within=HEALTHY_WITHIN, what="cluster"):
    t = time.monotonic()
    ok = wait_until(lambda: healthy(net, pods, procs), within, 0.2)
    check(ok, f"{what} not healthy {within:.0f}s on: {etcdctl(net, pods, 'endpoint', 'health').stderr}")
    return time.monotonic() - t


def members(net, pods):
    r = etcdctl(net, pods, "member", "list", "-w", "json")
    check(r.returncode == 0, f"member list: {r.stderr}")
    return {m.get("name", ""): m for m in json.loads(r.stdout)["members"]}


def put_get(net, writer, reader, key):
    value = f"v{random.randint(0, 1 << 30)}"
    r = etcdctl(net, [writer], "put", key, value)
    check(r.returncode == 0 and "OK" in r.stdout, f"put through {writer.name}: {r.stdout}{r.stderr}")
    r = etcdctl(net, [reader], "get", key, "--print-value-only", "--consistency=l")
    check(r.returncode == 0 and r.stdout.strip() == value, f"get through {reader.name}: {r.stdout!r}{r.stderr}")
    return value


def boot_cluster(k: Cluster, ns, subnet):
    """The example as shipped: 3 inits at once, records at random 0-3 s offsets, each member's etcd
    started as soon as its init exits; then healthy, as `endpoint health` over the 3 FQDNs says."""
    docs, sts, net, pods = example_on_podnet(k, "etcd", ns, subnet)
    args = pods[0].init_container()["args"]
    check("--wait=self" in args, f"etcd init args do not say --wait=self: {args}")
    offsets = [random.uniform(0, 3) for _ in pods]
    t0 = time.monotonic()
    mains = boot(net, pods, offsets, start_etcd)
    procs = [(p.name, mains[p.name]) for p in pods]
    wait_healthy(net, pods, procs)
    log(f"3 members healthy {time.monotonic() - t0:.1f}s after the inits started "
        f"(records at {', '.join(f'{o:.1f}' for o in offsets)}s)")
    return docs, net, pods, mains


def restart_with_new_ip(net, pods, mains, i, host, silent=False):
    """Pod i deleted and re-created with a new IP and its PVC; DNS still serves the old IP until
    the record is updated: its init must wait for that (own-name check), then etcd rejoins."""
    old = pods[i]
    new = net.recreate(old, net.ip(int(old.ip.split(".")[2]), host), silent)
    pods[i] = new
    new.start_init()
    time.sleep(1.5)
    expect_running([new], f"while DNS still served the old IP {old.ip}")
    no_output(new, new.host_path("/config/etcd.json"))
    net.publish(new)
    t = time.monotonic()
    expect_exit0([new], t)
    mains[new.name] = start_etcd(new)
    return new


def run_restart_new_ip(k: Cluster):
    """etcd member restarted with its data and a new IP: waits out the stale record, rejoins.

    The stale-record guard: the re-created pod's init waits while its name still resolves to the
    old IP; the member then rejoins as the same member (same ID) and serves the data."""
    docs, net, pods, mains = boot_cluster(k, "e2e-etcd-life", 6)
    put_get(net, pods[0], pods[2], "/e2e/before")
    before = members(net, pods)
    new = restart_with_new_ip(net, pods, mains, 1, 41)
    took = wait_healthy(net, pods, [(p.name, mains[p.name]) for p in pods], what="after the restart")
    log(f"{new.name} back with IP {new.ip} and its data: 3/3 healthy {took:.1f}s after etcd started")
    after = members(net, pods)
    check(after[new.name]["ID"] == before[new.name]["ID"], f"{new.name} came back as a different member")
    check(len(after) == 3, f"member list: {sorted(after)}")
    r = etcdctl(net, [new], "get", "/e2e/before", "--print-value-only", "--consistency=s")
    check(r.returncode == 0 and r.stdout.strip(), f"serializable get on {new.name}: {r.stdout!r}{r.stderr}")
    put_get(net, new, pods[0], "/e2e/after")
    log(f"{new.name}: same member ID, its own copy of the data, put/get through it ok")
    for p in pods:
        net.delete(p)


def run_member_lost(k: Cluster):
    """etcd member gone for good while another restarts: with the example's policy it rejoins.

    etcd-2's node is lost (its pod never comes back, its record is gone); etcd-1 then restarts
    with its data and a new IP. Contrast: the former --wait=all keeps that init waiting; the
    example's policy lets it start, and the 2 remaining members serve writes."""
    docs, net, pods, mains = boot_cluster(k, "e2e-etcd-lost", 7)
    gone = pods[2]
    net.cut(gone)
    net.delete(gone)
    net.unpublish(gone)
    log(f"{gone.name}: node lost, pod gone for good, record removed")

    # Contrast: the same restart with --wait=all (the example's former policy).
    old = pods[1]
    contrast = net.recreate(old, net.ip(7, 61))
    # The former args: --wait=all, and no restart policy (which would replace it: the data is kept).
    args = [a if not a.startswith("--wait=") else "--wait=all" for a in contrast.init_container()["args"]
            if not a.startswith("--wait-on-restart=")]
    contrast.start_init(args=args)
    net.publish(contrast)
    time.sleep(NOTICE)
    expect_running([contrast], "with --wait=all while a member is gone for good")
    log(f"contrast: {contrast.name} with --wait=all still waiting {NOTICE:.0f}s after its record appeared "
        "(for the member that is gone): 2 of 3 members down instead of 1")
    pods[1] = contrast

    new = restart_with_new_ip(net, pods, mains, 1, 42)
    live = pods[:2]
    took = wait_healthy(net, live, [(p.name, mains[p.name]) for p in live], what="the 2 remaining members")
    log(f"with the example's policy: {new.name} rejoined with its data, 2/2 live members healthy {took:.1f}s after "
        "etcd started")
    put_get(net, new, pods[0], "/e2e/two-of-three")
    log("writes go through with 2 of 3 members")
    for p in live:
        net.delete(p)


def run_lost_volume(k: Cluster):
    """etcd member with a lost volume: fails as documented, recovered by the documented steps.

    etcd-2 comes back with an empty PVC: from the bootstrap config it exits ("has already been
    bootstrapped"). The procedure of docs/datastores.md: member remove, member add, the
    etcd-cluster-state ConfigMap set to "existing", the pod deleted; it joins as a new member."""
    docs, net, pods, mains = boot_cluster(k, "e2e-etcd-vol", 8)
    value = put_get(net, pods[0], pods[1], "/e2e/kept")
    lost = pods[2]
    old_id = members(net, pods)[lost.name]["ID"]
    net.delete(lost)
    lost.lose_claim("data")
    new = restart_with_new_ip(net, pods, mains, 2, 43)
    proc = mains[new.name]
    rc = proc.wait(HEALTHY_WITHIN)
    check(rc not in (None, 0), f"{new.name}: etcd with an empty volume did not exit ({rc})")
    check("has already been bootstrapped" in proc.stderr(), f"{new.name}: unexpected failure\n{proc.tail()}")
    log(f"{new.name} with an empty volume: etcd exits {rc} \"member ... has already been bootstrapped\" "
        "(the pod would crash-loop)")

    # The documented procedure (docs/datastores.md#etcd-pod-restarts).
    live = pods[:2]
    # etcd refuses a membership change with "unhealthy cluster" until the members that would
    # remain have been connected to the one asked for a few seconds (its strict reconfiguration
    # check): right after the cluster formed, `member remove` can be refused, and right after a
    # removal, `member add`. Repeat each until it is accepted, as the procedure says.
    tried = {}

    def accepted(what, *args):
        tried[what] = etcdctl(net, live, "member", *args)
        refused = "unhealthy cluster" in tried[what].stderr
        check(tried[what].returncode == 0 or refused, f"member {what}: {tried[what].stdout}{tried[what].stderr}")
        return tried[what].returncode == 0

    for what, args in [("remove", ["remove", f"{int(old_id):x}"]),
                       ("add", ["add", new.name, f"--peer-urls=http://{new.fqdn}:2380"])]:
        t = time.monotonic()
        check(wait_until(lambda: accepted(what, *args), 20, 1.0),
              f"member {what} refused for 20 s: {tried[what].stdout}{tried[what].stderr}")
        log(f"member {what} accepted {time.monotonic() - t:.1f}s after it was first asked")
    cm = find(docs, "ConfigMap", "etcd-cluster-state")
    cm["data"]["initial-cluster-state"] = "existing"  # kubectl patch configmap etcd-cluster-state ...
    log("etcdctl member remove <old ID>; member add etcd-2 --peer-urls=...; "
        "ConfigMap etcd-cluster-state -> existing; kubectl delete pod etcd-2")
    new = restart_with_new_ip(net, pods, mains, 2, 53)
    rendered = json.loads(new.host_path("/config/etcd.json").read_text())
    check(rendered["initial-cluster-state"] == "existing", f"rendered {rendered['initial-cluster-state']!r}")
    took = wait_healthy(net, pods, [(p.name, mains[p.name]) for p in pods], what="after the recovery")
    ms = members(net, pods)
    check(len(ms) == 3 and ms[new.name]["ID"] != old_id, f"member list after recovery: {ms}")
    r = etcdctl(net, [new], "get", "/e2e/kept", "--print-value-only", "--consistency=s")
    check(r.returncode == 0 and r.stdout.strip() == value, f"{new.name} has not the data: {r.stdout!r}{r.stderr}")
    log(f"{new.name} joined as a new member: 3/3 healthy {took:.1f}s after etcd started, data replicated to it")
    for p in pods:
        net.delete(p)
