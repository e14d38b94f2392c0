#!/usr/bin/env python3
"""peerconf end-to-end suite driver (issue 5): this machine plays the kubelet.

Started by tests/e2e/run.sh, which installs the tools, builds the release binary and passes:

    suite.py --workdir DIR --bin PATH [--repo DIR] [SCENARIO...]

Sets up the cluster (dnsmasq serving cluster.local on port 53 of a 127.<net>.53.x address, the node of
tests/harness/pods.py, its sandbox self-check), runs the scenarios of tests/e2e/scenarios/, and
checks the cleanup contract: every process stopped by PID, no mount left in the machine's
namespace, /etc/resolv.conf unchanged. Ends with `e2e: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import random
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the harness package

from harness import Failure  # noqa: E402
from harness.dnsmasq import start_on_first_free  # noqa: E402
from harness.manifests import image_from_dockerfile  # noqa: E402
from harness.netns import Network  # noqa: E402
from harness.pods import Node, mkdir  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402
from scenarios.common import Cluster, start_clock  # noqa: E402

T0 = time.monotonic()


def host_mounts_under(path: Path):
    p = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [m for m in points if m == p or m.startswith(p + "/")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--repo", type=Path, default=HERE.parent.parent)
    ap.add_argument("scenarios", nargs="*")
    a = ap.parse_args()

    install_stop_handlers()
    workdir = a.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    sup = Supervisor(workdir / "logs", workdir / "pids")
    atexit.register(sup.stop_all)
    resolv_before = hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest()

    chosen = SCENARIOS
    if a.scenarios:
        unknown = set(a.scenarios) - {n for n, _ in SCENARIOS}
        if unknown:
            print(f"unknown scenario(s): {', '.join(sorted(unknown))}; known: {', '.join(n for n, _ in SCENARIOS)}")
            return 2
        chosen = [(n, f) for n, f in SCENARIOS if n in a.scenarios]

    net = random.randint(100, 250)  # this run's 127.<net>.x.y addresses: concurrent runs don't meet
    passed = failed = 0
    try:
        binary = workdir / "peerconf"
        shutil.copy2(a.bin, binary)  # a private copy: others may rebuild target/ meanwhile
        os.chmod(binary, 0o755)
        repo = a.repo.resolve()
        # dnsmasq on port 53: a resolv.conf nameserver line has no port.
        mkdir(workdir / "dns")
        dns = start_on_first_free(sup, "dnsmasq", [f"127.{net}.53.{53 + i}" for i in range(8)], 53,
                                  workdir / "dns" / "hosts", query_log=workdir / "dns" / "dnsmasq.log")
        node = Node(workdir, sup, binary, image_from_dockerfile(repo), dns.addr)
        node.selfcheck()
        # The pod network the datastore scenarios use (harness.netns), proven the same way.
        check_net = Network(f"pce2e{net}chk", net, workdir / "netns")
        try:
            check_net.selfcheck()
        finally:
            check_net.close()
        k = Cluster(node, dns, repo, net)
        print(f"e2e: dnsmasq on {dns.addr}:53, pods on 127.{net}.x.y, work dir {workdir}", flush=True)
        print("e2e: sandbox self-check ok (uid/gid/fsGroup, read-only root, pod resolv.conf, host name, env)",
              flush=True)
        print("e2e: pod network self-check ok (every pod reaches the node, also after each pod in turn is "
              "replaced)", flush=True)
    except Exception as e:  # setup failure: every scenario fails
        print(f"e2e: setup failed: {e}", flush=True)
        traceback.print_exc()
        print(f"e2e: 0 passed, {len(chosen)} failed", flush=True)
        return 1

    for i, (name, fn) in enumerate(chosen, 1):
        print(f"\n== [{i}/{len(chosen)}] {name}: {fn.__doc__.split(chr(10))[0].strip()}", flush=True)
        start = start_clock()
        first_proc = len(sup.procs)
        try:
            fn(k)
        except Exception as e:
            failed += 1
            kind = "" if isinstance(e, Failure) else f"{type(e).__name__}: "
            print(f"FAIL  {name} ({time.monotonic() - start:.1f}s): {kind}{e}", flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
        else:
            passed += 1
            print(f"PASS  {name} ({time.monotonic() - start:.1f}s)", flush=True)
        finally:
            for p in sup.procs[first_proc:]:
                p.stop()
            try:
                left = k.close()  # the scenario's pod network, if it made one
            except Exception as e:
                left = [str(e)]
            if left:
                failed += 1
                print(f"FAIL  {name}: network namespaces left: {left}", flush=True)

    # Cleanup is part of the contract: nothing left running, nothing mounted, resolv.conf intact.
    dns.stop()
    sup.stop_all()
    problems = []
    try:
        netns_left = k.close()
    except Exception as e:
        netns_left = [str(e)]
    if netns_left:
        problems.append(f"network namespaces left: {netns_left}")
    alive = [f"{p.name} (pid {p.pid})" for p in sup.procs if p.running()]
    if alive:
        problems.append(f"still running: {alive}")
    mounts = host_mounts_under(workdir)
    if mounts:
        problems.append(f"mounts left in the machine's namespace: {mounts}")
    if hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest() != resolv_before:
        problems.append("/etc/resolv.conf changed")
    print(flush=True)
    if problems:
        failed += 1
        print(f"FAIL  cleanup: {'; '.join(problems)}", flush=True)
    else:
        killed = [p.name for p in sup.procs if p.killed]
        how = f"{len(killed)} of them only by SIGKILL: {killed}" if killed else "all ended or stopped by SIGTERM"
        print(f"ok    cleanup: {len(sup.procs)} processes started and stopped by PID ({how}), "
              "no mount or network namespace left, /etc/resolv.conf untouched", flush=True)
    print(f"e2e: total {time.monotonic() - T0:.1f}s", flush=True)
    print(f"e2e: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
