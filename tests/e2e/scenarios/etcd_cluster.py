"""Scenario etcd-cluster: `manifests/examples/etcd` (--wait=self --own-record=optional) against real etcd members, with
the contrast of the same configs rendered without waiting."""

import json
import os
import random
import time
import urllib.request
from pathlib import Path

from harness import check
from harness.manifests import find, kustomize
from harness.pods import setpriv, with_resolv
from harness.proc import run as run_cmd

from .common import Cluster, expect_exit0, expect_running, governing_service, log, no_output


def etcd_rewrite(rendered: dict, data_dir: Path):
    """The one deviation from the rendered file, and why: in a pod, 127.0.0.1 is that pod's own
    loopback; here three members share one, so the extra 127.0.0.1 listeners would collide. The
    data dir is the member's volume (mounted at /var/lib/etcd in the manifest)."""
    cfg = dict(rendered)
    for key in ("listen-client-urls", "listen-metrics-urls"):
        urls = [u for u in cfg[key].split(",") if not u.startswith("http://127.0.0.1:")]
        cfg[key] = ",".join(urls)
    cfg["data-dir"] = str(data_dir)
    changed = sorted(key for key in cfg if cfg[key] != rendered.get(key))
    check(set(changed) <= {"listen-client-urls", "listen-metrics-urls", "data-dir"}, f"rewrote {changed}")
    return cfg


ETCD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ETCDCTL_API": "3"}


def start_etcd(k: Cluster, pod, rendered_path, tag):
    """A real etcd member as the pod's main container would run it: its user and groups, its
    config file, resolving through the cluster DNS."""
    main = pod.main_container()
    cmd = list(main.get("command", [])) + list(main.get("args", []))
    check(len(cmd) == 2 and cmd[0].endswith("/etcd") and cmd[1].startswith("--config-file="),
          f"etcd container command is not `etcd --config-file=...`: {cmd}")
    check(pod.host_path(cmd[1].split("=", 1)[1], main) == rendered_path,
          f"the etcd container reads {cmd[1]}, which is not the file the init wrote")
    check(pod.can_read(rendered_path), f"{pod.name}: the etcd container's user cannot read the rendered file")
    uid, gid, groups = pod.ids(main)
    data = pod.volume("data")
    os.chown(data, uid, gid)
    cfg = etcd_rewrite(json.loads(rendered_path.read_text()), data / "data")
    cfgfile = pod.dir / f"etcd-{tag}.json"
    cfgfile.write_text(json.dumps(cfg, indent=2))
    os.chmod(cfgfile, 0o644)
    return k.node.sup.start(
        f"{pod.namespace}.{pod.uid}.etcd-{tag}",
        with_resolv(pod.resolv, [*setpriv(uid, gid, groups), "etcd", f"--config-file={cfgfile}"]),
        env=ETCD_ENV,
    )


def etcdctl(pod, *args, timeout=10):
    return run_cmd(with_resolv(pod.resolv, ["etcdctl", "--dial-timeout=1s", "--command-timeout=2s", *args]),
                   env=ETCD_ENV, timeout=timeout, check_rc=False)


def run(k: Cluster):
    """Real etcd: unhealthy while no name exists; the example's inits start while their own names
    do not exist yet but wait out one that gives another address; a healthy 3-member cluster.

    The contrast first (members started from configs rendered without waiting, before any name
    exists, stay unhealthy), then the example's inits (--wait=self --own-record=optional), then a
    real 3-member cluster from the rendered files."""
    docs = kustomize(k.repo / "manifests" / "examples" / "etcd")
    sts = find(docs, "StatefulSet", "etcd")
    governing_service(docs, sts)
    replicas = sts["spec"]["replicas"]
    check(replicas == 3, f"etcd: spec.replicas is {replicas}, expected 3")

    # --- contrast: the same rendered configs, but no waiting (the tutorial's cp+sed world) ---
    cns = "e2e-etcd-nowait"
    cpods = k.pods(docs, cns, 2, range(replicas))
    base_args = cpods[0].init_container().get("args", [])
    check("--wait=self" in base_args and "--own-record=optional" in base_args,
          f"etcd init args do not say --wait=self --own-record=optional: {base_args}")
    nowait = [a if not a.startswith("--wait=") else "--wait=none" for a in base_args]
    for p in cpods:
        p.start_init(args=nowait)
    for p in cpods:
        rc = p.init.wait(10)
        check(rc == 0, f"{p.name}: render with --wait=none exited {rc}\n{p.init.tail()}")
    members = [start_etcd(k, p, p.host_path("/config/etcd.json"), "nowait") for p in cpods]
    log("contrast: 3 etcd members started from configs rendered WITHOUT waiting; no DNS records exist")
    endpoints = ",".join(f"http://{p.ip}:2379" for p in cpods)
    contrast_start = time.monotonic()
    deadline = contrast_start + 4.0
    probes = 0
    while time.monotonic() < deadline:
        # One etcdctl checks the 3 endpoints concurrently; each answers "is healthy" or "is unhealthy".
        r = etcdctl(cpods[0], f"--endpoints={endpoints}", "--command-timeout=1s", "endpoint", "health")
        probes += 1
        lines = (r.stdout + r.stderr).splitlines()
        check(r.returncode != 0 and not any(" is healthy" in line for line in lines),
              f"contrast: a member reported healthy without its peers' names:\n{r.stdout}{r.stderr}")
        check(sum(" is unhealthy" in line for line in lines) == 3, f"contrast: expected 3 unhealthy: {lines}")
        time.sleep(0.2)
    states = []
    for p, m in zip(cpods, members, strict=True):
        elections = m.stderr().count("starting a new election")
        states.append(f"{p.name} {'running' if m.running() else f'exited {m.returncode}'}, "
                      f"{elections} elections started")
    log(f"contrast: no member healthy for {time.monotonic() - contrast_start:.1f}s "
        f"({probes} rounds of `endpoint health` on all 3, every member unhealthy every time); "
        f"{'; '.join(states)}")
    check(not any("elected leader" in m.stderr() for m in members), "contrast: a leader was elected without DNS")
    for m in members:
        m.stop()

    # --- the example as shipped: --wait=self --own-record=optional -----------------------------
    # etcd-0 and etcd-1 have no record yet (a first start: nothing stale); etcd-2's name still
    # gives another address (a lingering record): only etcd-2 waits, until its record is right.
    ns = "e2e-etcd"
    pods = k.pods(docs, ns, 0, range(replicas))
    outputs = [p.host_path("/config/etcd.json") for p in pods]
    stale = cpods[2].ip
    k.dns.publish(pods[2].fqdn, stale)
    t = time.monotonic()
    for p in pods:
        p.start_init()
    log(f"started etcd-0/1/2 inits at once (--wait=self --own-record=optional); no records but "
        f"{pods[2].fqdn} -> {stale} (stale)")
    expect_exit0(pods[:2], t)
    time.sleep(1.5)
    expect_running(pods[2:], f"while its own name gives another address ({stale})")
    no_output(pods[2], outputs[2])
    k.dns.publish(pods[2].fqdn, pods[2].ip)
    t = time.monotonic()
    log(f"published {pods[2].fqdn} -> {pods[2].ip}")
    expect_exit0(pods[2:], t)
    for p in pods[:2]:
        k.dns.publish(p.fqdn, p.ip)

    expected_cluster = ",".join(f"{p.name}=http://{p.fqdn}:2380" for p in pods)
    for p, out in zip(pods, outputs, strict=True):
        cfg = json.loads(out.read_text())
        check(cfg.get("initial-cluster") == expected_cluster,
              f"{p.name}: initial-cluster {cfg.get('initial-cluster')!r} != {expected_cluster!r}")
        check(cfg.get("name") == p.name, f"{p.name}: name {cfg.get('name')!r}")
        check(cfg.get("initial-advertise-peer-urls") == f"http://{p.fqdn}:2380", f"{p.name}: advertise-peer")
        check(cfg.get("listen-peer-urls") == f"http://{p.ip}:2380", f"{p.name}: listen-peer-urls")
    log("rendered etcd.json: one initial-cluster string of 3 FQDN members, listen URLs on each pod IP")

    members = [start_etcd(k, p, out, "cluster") for p, out in zip(pods, outputs, strict=True)]
    started = time.monotonic()
    endpoints = ",".join(f"http://{p.fqdn}:2379" for p in pods)
    while True:
        r = etcdctl(pods[0], f"--endpoints={endpoints}", "endpoint", "health")
        if r.returncode == 0:
            break
        for p, m in zip(pods, members, strict=True):
            check(m.running(), f"{p.name}: etcd exited {m.returncode}\n{m.tail()}")
        check(time.monotonic() - started < 30, f"etcd cluster not healthy after 30s:\n{r.stdout}{r.stderr}")
        time.sleep(0.3)
    # etcdctl 3.4 prints the health lines on stderr.
    healthy = [line for line in (r.stdout + r.stderr).splitlines() if "is healthy" in line]
    check(len(healthy) == 3, f"endpoint health: {r.stdout}{r.stderr}")
    log(f"etcdctl endpoint health: 3/3 healthy via their FQDNs, {time.monotonic() - started:.1f}s after start")

    r = etcdctl(pods[0], f"--endpoints={endpoints}", "member", "list", "-w", "json")
    check(r.returncode == 0, f"member list: {r.stderr}")
    ms = json.loads(r.stdout)["members"]
    got = sorted((m.get("name", ""), tuple(m.get("peerURLs", [])), bool(m.get("clientURLs"))) for m in ms)
    want = sorted((p.name, (f"http://{p.fqdn}:2380",), True) for p in pods)
    check(got == want, f"member list: {got} != {want} (a member without a name has not started)")
    log("etcdctl member list: 3 started members, names and peer URLs as rendered")

    value = f"peerconf-e2e-{random.randint(0, 1 << 30)}"
    r = etcdctl(pods[0], f"--endpoints=http://{pods[0].fqdn}:2379", "put", "/e2e/key", value)
    check(r.returncode == 0 and "OK" in r.stdout, f"put: {r.stdout}{r.stderr}")
    r = etcdctl(pods[2], f"--endpoints=http://{pods[2].fqdn}:2379", "get", "/e2e/key",
                "--print-value-only", "--consistency=l")
    check(r.returncode == 0 and r.stdout.strip() == value, f"get from etcd-2: {r.stdout!r}{r.stderr}")
    log("put through etcd-0, linearizable get through etcd-2: round-trip ok")

    # The manifest's readiness probe, as the kubelet would run it (httpGet to the pod IP).
    main = pods[0].main_container()
    probe = main["readinessProbe"]["httpGet"]
    port = probe["port"]
    if isinstance(port, str):
        port = next(cp["containerPort"] for cp in main["ports"] if cp["name"] == port)
    for p in pods:
        with urllib.request.urlopen(f"http://{p.ip}:{port}{probe['path']}", timeout=3) as resp:
            body = resp.read().decode()
            check(resp.status == 200 and '"health":"true"' in body.replace(" ", ""),
                  f"{p.name}: readiness probe {resp.status} {body}")
    log(f"readiness probe (GET :{port}{probe['path']} on each pod IP): 200 health true")
    for m in members:
        m.stop()
