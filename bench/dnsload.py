#!/usr/bin/env python3
"""DNS load of a starting StatefulSet (issue 21, item 3): N pods (peerconf processes) start at
once, each waiting for its N peers' names, against one dnsmasq; the queries the DNS server
receives are counted per second.

    dnsload.py --bin PEERCONF --out RESULTS.json [--sizes 3,11,101,1001] [--window SECS]
               [--max-qps Q] [--policy all] [--present none|all]
    dnsload.py --markdown RESULTS.json

Layout: two network namespaces made here (pcload-srv: dnsmasq at 10.254.77.1:53; pcload-cli:
every pod, 10.254.77.2), joined by a veth pair. The server's count is its namespace's
/proc/net/snmp `Udp: InDatagrams` (every UDP datagram delivered there, i.e. every query dnsmasq
received), sampled every 100 ms; `RcvbufErrors` counts queries dropped because dnsmasq was
behind. The clients' `Udp: OutDatagrams` in their namespace is what the pods sent. `--present
none` (default, the worst case): no record exists, so no pod's wait is ever met and every pod
asks for every pending name each round until `--timeout` (= the window); `all`: every record
exists from the start.

Needs root (ip netns) and dnsmasq. Each pod is `peerconf render --dry-run --wait POLICY
--on-timeout continue`, output discarded. Every process and namespace is removed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRV, CLI = "pcload-srv", "pcload-cli"
SRV_IP, CLI_IP = "10.254.77.1", "10.254.77.2"


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def setup():
    teardown()
    sh("ip", "netns", "add", SRV)
    sh("ip", "netns", "add", CLI)
    sh("ip", "link", "add", "pcl-s", "netns", SRV, "type", "veth", "peer", "name", "pcl-c", "netns", CLI)
    for ns, dev, ip in ((SRV, "pcl-s", SRV_IP), (CLI, "pcl-c", CLI_IP)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def teardown():
    for ns in (SRV, CLI):
        sh("ip", "netns", "del", ns, check=False)


SAMPLER = r"""
import sys, time
every, out = float(sys.argv[1]), open(sys.argv[2], "w", buffering=1)
t0 = float(sys.argv[3])
while True:
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    c = dict(zip(rows[0][1:], rows[1][1:]))
    out.write(f"{time.clock_gettime(time.CLOCK_MONOTONIC) - t0:.4f} {c['InDatagrams']} {c['RcvbufErrors']} {c['OutDatagrams']}\n")
    time.sleep(every)
"""


class Sampler:
    """One process in each namespace reads its /proc/net/snmp every `every` s (no process
    started per sample: under load that would miss seconds), at a raised priority, like the
    server: on a real cluster the DNS server does not share its CPU with the starting pods."""

    def __init__(self, workdir, every=0.1):
        self.t0 = time.monotonic()
        self.files = {ns: Path(workdir) / f"udp-{ns}.txt" for ns in (SRV, CLI)}
        self.procs = [subprocess.Popen(["ip", "netns", "exec", ns, "nice", "-n", "-10", sys.executable, "-c",
                                        SAMPLER, str(every), str(f), str(self.t0)])
                      for ns, f in self.files.items()]

    def now(self):
        return time.monotonic() - self.t0

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait(10)

    def samples(self):
        """[(t, server InDatagrams, server RcvbufErrors, clients' OutDatagrams)], matched by time."""
        read = lambda f: [tuple(float(x) for x in l.split()) for l in f.read_text().splitlines() if l.count(" ") == 3]
        srv, cli = read(self.files[SRV]), read(self.files[CLI])
        out, j = [], 0
        for t, rin, drop, _ in srv:
            while j + 1 < len(cli) and cli[j + 1][0] <= t:
                j += 1
            out.append((t, int(rin), int(drop), int(cli[j][3]) if cli else 0))
        return out


def per_second(samples, t_start, index, seconds):
    """Counter deltas per 1 s bucket from t_start (the last sample at or before each edge)."""
    def at(t):
        best = samples[0][index]
        for s in samples:
            if s[0] > t:
                break
            best = s[index]
        return best

    return [at(t_start + i + 1) - at(t_start + i) for i in range(seconds)]


def one(binary, n, window, max_qps, policy, present, workdir):
    hosts = Path(workdir) / f"hosts-{n}"
    hosts.mkdir(exist_ok=True)
    names = [f"web-{i}.web.default.svc.cluster.local" for i in range(n)]
    if present == "all":
        (hosts / "all").write_text("".join(f"10.254.{1 + i // 250}.{1 + i % 250} {name}\n" for i, name in enumerate(names)))
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", SRV, "dnsmasq", "--keep-in-foreground", "--port=53", f"--listen-address={SRV_IP}",
         "--bind-interfaces", "--local=/cluster.local/", "--no-resolv", "--no-hosts", f"--hostsdir={hosts}",
         "--cache-size=0", "--dns-forward-max=10000", "--user=root", "--pid-file="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    template = Path(workdir) / "t.txt"
    template.write_text("{{ pod_name }}\n")
    launcher = Path(workdir) / "launch.sh"
    # One shell in the client namespace starts every pod, as a StatefulSet's Parallel policy does.
    launcher.write_text(
        "#!/bin/sh\nfor i in $(seq 0 $(($1 - 1))); do\n"
        f"  POD_IP=10.254.{{0}}.$((i % 250 + 1)) {binary} render --template {template} --dry-run --wait {policy} "
        f"--pod-name web-$i --replicas $1 --namespace default --cluster-domain cluster.local "
        f"--nameserver {SRV_IP} --timeout {window}s --on-timeout continue --max-qps {max_qps} "
        "--log-level error >/dev/null 2>&1 &\ndone\nwait\n".replace("{0}", "1"))
    launcher.chmod(0o755)
    subprocess.run(["renice", "-n", "-10", "-p", str(dnsmasq.pid)], capture_output=True)
    sampler = Sampler(workdir)
    time.sleep(1.0)
    t_launch = sampler.now()
    started = time.monotonic()
    pods = subprocess.Popen(["ip", "netns", "exec", CLI, str(launcher), str(n)])
    pods.wait(timeout=window + 600)
    elapsed = time.monotonic() - started
    time.sleep(1.0)
    sampler.stop()
    samples = sampler.samples()
    dnsmasq.send_signal(signal.SIGTERM)
    dnsmasq.wait(timeout=10)
    seconds = int(elapsed) + 1
    received = per_second(samples, t_launch, 1, seconds)
    dropped = per_second(samples, t_launch, 2, seconds)
    sent = per_second(samples, t_launch, 3, seconds)
    total_received = samples[-1][1] - samples[0][1]
    return {
        "n": n, "window_s": window, "max_qps": max_qps, "policy": policy, "present": present,
        "pods_done_s": round(elapsed, 2), "received_per_s": received, "dropped_per_s": dropped,
        "sent_per_s": sent, "total_received": total_received, "total_sent": samples[-1][3] - samples[0][3],
        "load": os.getloadavg(),
    }


def markdown(results):
    out = ["| pods N | records | pods sent, queries/s: s1, s2, s3, peak, mean from s4 | sent in all | server received: peak, mean from s4 | dropped at the server (rcvbuf) | pods' steady promise N x --max-qps | all pods done | load (1/5/15 min) at the end |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        sent, rec = r["sent_per_s"], r["received_per_s"]
        window = r["window_s"]
        mean = lambda xs: sum(xs) / len(xs) if xs else 0
        out.append(
            f"| {r['n']} | {r['present']} | {sent[0]}, {sent[1]}, {sent[2]}, {max(sent)}, {mean(sent[3:window]):.0f} | "
            f"{r['total_sent']} | {max(rec)}, {mean(rec[3:window]):.0f} | {sum(r['dropped_per_s'])} | "
            f"{r['n'] * r['max_qps']} | {r['pods_done_s']} s | {' / '.join(f'{x:.1f}' for x in r['load'])} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--out")
    ap.add_argument("--sizes", default="3,11,101,1001")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--max-qps", type=int, default=100)
    ap.add_argument("--policy", default="all")
    ap.add_argument("--present", default="none", choices=["none", "all"])
    ap.add_argument("--markdown")
    a = ap.parse_args()
    if a.markdown:
        sys.stdout.write(markdown(json.loads(Path(a.markdown).read_text())))
        return
    results = []
    setup()
    try:
        with tempfile.TemporaryDirectory(prefix="dnsload-") as workdir:
            os.chmod(workdir, 0o755)
            for n in map(int, a.sizes.split(",")):
                r = one(os.path.abspath(a.bin), n, a.window, a.max_qps, a.policy, a.present, workdir)
                print(json.dumps({k: r[k] for k in ("n", "sent_per_s", "received_per_s", "dropped_per_s", "pods_done_s")}), flush=True)
                results.append(r)
                Path(a.out).write_text(json.dumps(results, indent=1))
    finally:
        teardown()
    sys.stdout.write(markdown(results))


if __name__ == "__main__":
    main()
