#!/usr/bin/env python3
"""Detection latency (issue 6, measurement 2), standard library only, loopback only.

The time from the moment the last needed peer record becomes servable to the moment the
config file exists, for three waiters run side by side in each trial:

  peerconf  `peerconf render` with its default wait settings (policy quorum, --max-interval 1s,
            --max-qps 100); only the server, the resolv.conf and a safety --timeout are given
  loop2     busybox sh: until nslookup NAME SERVER:PORT; do sleep 2; done; cp && sed -i
  loop1     the same with sleep 1 (peer-finder's period)

Each waiter has its own dnsmasq (own 127.x address and port, own --hostsdir, own
--log-queries file), so each one's queries are counted apart. The pod is consul-0 of 3; its own
record is published before the trial, consul-1 and consul-2 are absent (NXDOMAIN). After a random
delay (so the moment falls at a random phase of every waiter's schedule) consul-1 is published in
all three hostsdirs: a dot-file written, then renamed into place; the moment is taken right
after each rename. That completes the quorum (self + consul-1), and is the one name the loops
wait for. A waiter's "config exists" moment is its exit (peerconf renames its output just
before it exits; the loop's sed -i has finished), as the harness's supervisor notes it (a thread
blocked in waitpid); the file is then checked. dnsmasq, the DNS queries and the processes are
tests/harness's (through dnsutil.py for the waits).

Usage: detect.py CONFIG.json OUT.json   (CONFIG is written by bench/run.sh)
"""

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsutil  # noqa: E402  (puts tests/ on sys.path for the harness)
from harness.dns import free_port  # noqa: E402
from harness.dnsmasq import Dnsmasq  # noqa: E402
from harness.proc import Supervisor, install_stop_handlers  # noqa: E402


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def count_types(dns, start, end, names):
    """Queries for any of `names` logged between two log marks, by record type."""
    counts = {}
    for t, name in dns.queried_names(start, end):
        if name in names:
            counts[t] = counts.get(t, 0) + 1
    return counts


def count_queries(dns, start, end, names):
    """Queries for each of `names` logged between two log marks."""
    counts = {n: 0 for n in names}
    for _t, name in dns.queried_names(start, end):
        if name in counts:
            counts[name] += 1
    return counts


def brief(reply):
    """(rcode, number of addresses) of a dnsutil.ask() reply, None for no reply."""
    return None if reply is None else (reply.rcode, len(reply.addrs))


def main():
    cfg = json.load(open(sys.argv[1]))
    out_path = sys.argv[2]
    work = cfg["work"]
    rng = random.Random(cfg.get("seed", 6))
    ns, svc, domain = cfg["namespace"], "consul", "cluster.local"
    fqdn = lambda i: f"consul-{i}.{svc}.{ns}.svc.{domain}"  # noqa: E731
    self_name, pending, other = fqdn(0), fqdn(1), fqdn(2)
    install_stop_handlers()
    os.makedirs(os.path.join(work, "detect"), mode=0o755, exist_ok=True)
    sup = Supervisor(Path(work) / "detect", cfg["pids_file"])

    tools = ["peerconf", "loop2", "loop1"]
    servers = {}
    try:
        for i, tool in enumerate(tools):
            addr = f"127.77.1.{i + 1}"
            d = os.path.join(work, "detect", tool)
            outdir = os.path.join(d, "out")
            os.makedirs(outdir, exist_ok=True)
            for p in (d, outdir):
                os.chmod(p, 0o755)
            dns = Dnsmasq(sup, f"{tool}.dnsmasq", addr, free_port(addr), Path(d) / "hosts", zone=domain,
                          query_log=Path(d) / "dnsmasq.log")
            servers[tool] = dict(addr=addr, port=dns.port, outdir=outdir, dns=dns)
            dns.publish(self_name, "10.0.0.10", wait=False)

        # Verify the publishing semantics this measurement relies on, on every server:
        # absent -> NXDOMAIN, renamed into place -> served by the very next query, removed -> NXDOMAIN.
        verified = {}
        for tool, s in servers.items():
            dnsutil.wait(s["addr"], s["port"], self_name, "noerror", 5)
            before = brief(dnsutil.ask(s["addr"], s["port"], pending))
            s["dns"].publish(pending, "10.0.0.11", wait=False)
            during = brief(dnsutil.ask(s["addr"], s["port"], pending))
            s["dns"].unpublish(pending)
            after = brief(dnsutil.ask(s["addr"], s["port"], pending))
            ok = before == (3, 0) and during is not None and during[0] == 0 and during[1] >= 1 and after == (3, 0)
            verified[tool] = dict(absent=before, first_query_after_publish=during, removed=after, ok=ok)
            if not ok:
                raise SystemExit(f"dnsmasq publishing semantics not as expected on {tool}: {verified[tool]}")

        def waiter_cmd(tool, s):
            server = f"{s['addr']}:{s['port']}"
            if tool == "peerconf":
                return [
                    cfg["peerconf"], "render", "--template", cfg["template"],
                    "--output", os.path.join(s["outdir"], "consul.json"),
                    "--pod-name", "consul-0", "--replicas", "3", "--pod-ip", "10.0.0.10",
                    "--namespace", ns, "--resolv-conf", cfg["resolv_conf"],
                    "--nameserver", server, "--timeout", "60s",
                ]
            period = {"loop2": "2", "loop1": "1"}[tool]
            script = (
                'i=0; until nslookup "$1" "$2" >/dev/null 2>&1; do '
                'i=$((i+1)); [ "$i" -ge 60 ] && exit 1; sleep ' + period + "; done; "
                'cp "$3" "$4/consul.json" && sed -i "s/default/$POD_NAMESPACE/g" "$4/consul.json"'
            )
            return [cfg["busybox"], "sh", "-c", script, "sh", pending, server, cfg["tutorial"], s["outdir"]]

        commands = {t: waiter_cmd(t, s) for t, s in servers.items()}
        env = dict(os.environ, POD_NAMESPACE=ns)
        lo, hi = cfg["publish_after"]
        # Publish moments stratified over [lo, hi]: one random moment in each of `trials` equal
        # slices, in random order, so that the trials cover every phase of the loops' 1 s and
        # 2 s cycles evenly (pure random moments left the 2 s loop's median off by 0.3 s).
        n = cfg["trials"]
        delays = [lo + (hi - lo) * (k + rng.random()) / n for k in range(n)]
        rng.shuffle(delays)
        trials = []
        errs = {}  # (tool, trial) -> its process, for the stderr of a failed one
        for k in range(cfg["trials"]):
            for s in servers.values():
                try:
                    os.unlink(os.path.join(s["outdir"], "consul.json"))
                except FileNotFoundError:
                    pass
            off0 = {t: s["dns"].log_mark() for t, s in servers.items()}
            t0 = time.monotonic()
            procs = {t: sup.start(f"{t}.trial{k}", commands[t], env=env) for t in tools}
            delay = delays[k]
            time.sleep(max(0.0, t0 + delay - time.monotonic()))
            early = {t for t, p in procs.items() if not p.running()}
            off_pub, t_pub = {}, {}
            for t in tools:
                s = servers[t]
                off_pub[t] = s["dns"].log_mark()
                s["dns"].publish(pending, "10.0.0.11", wait=False)
                t_pub[t] = time.monotonic()
            bound = max(t_pub.values()) + cfg["detect_bound"]
            result = {"trial": k, "publish_after": delay, "tools": {}}
            for t, p in procs.items():
                exited = p.wait(max(0.0, bound - time.monotonic())) is not None
                if not exited:
                    p.stop(grace=2)
                rc = p.returncode
                out = os.path.join(servers[t]["outdir"], "consul.json")
                good = exited and rc == 0 and t not in early and os.path.exists(out)
                if good and t == "peerconf":
                    json.load(open(out))
                pend = count_queries(servers[t]["dns"], off0[t], off_pub[t], [pending, other])
                result["tools"][t] = {
                    "ok": good,
                    "exit": rc,
                    "latency": (p.exited_at - t_pub[t]) if exited else None,
                    "pending_seconds": t_pub[t] - t0,
                    "queries_pending": pend,
                }
                errs[(t, k)] = p
            for s in servers.values():
                s["dns"].unpublish(pending)
            for s in servers.values():
                dnsutil.wait(s["addr"], s["port"], pending, "nxdomain", 5)
            trials.append(result)
            lat = {t: r["latency"] for t, r in result["tools"].items()}
            print(f"  trial {k + 1}/{cfg['trials']}: publish at {delay:.2f}s, detection "
                  + ", ".join(f"{t} {v * 1000:.0f} ms" if v is not None else f"{t} FAILED" for t, v in lat.items()),
                  flush=True)

        # Query rate while waiting: the three waiters wait on names that never appear, and the
        # queries each server logs between two moments well after the start are counted. A long
        # window, not the trials' short pending times, so a loop's period does not bias the count.
        r_from, r_to = cfg["rate_window"]
        for s in servers.values():
            try:
                os.unlink(os.path.join(s["outdir"], "consul.json"))
            except FileNotFoundError:
                pass
        t0 = time.monotonic()
        procs = {t: sup.start(f"{t}.rate", commands[t], env=env) for t in tools}
        time.sleep(max(0.0, t0 + r_from - time.monotonic()))
        off_a = {t: s["dns"].log_mark() for t, s in servers.items()}
        t_a = time.monotonic()
        time.sleep(max(0.0, t0 + r_to - time.monotonic()))
        off_b = {t: s["dns"].log_mark() for t, s in servers.items()}
        t_b = time.monotonic()
        alive = {t: p.running() for t, p in procs.items()}
        for p in procs.values():
            p.stop(grace=2)
        rate = {}
        for t in tools:
            c = count_queries(servers[t]["dns"], off_a[t], off_b[t], [pending, other])
            asked = [n for n in (pending, other) if c[n] > 0]
            rate[t] = {
                "window": [round(t_a - t0, 3), round(t_b - t0, 3)],
                "still_waiting_at_end": alive[t],
                "queries": c,
                "by_type": count_types(servers[t]["dns"], off_a[t], off_b[t], [pending, other]),
                "pending_names_asked": asked,
                "qps_per_name": sum(c.values()) / max(1, len(asked)) / (t_b - t_a),
            }
        print("  query rate while waiting, per pending name: "
              + ", ".join(f"{t} {v['qps_per_name']:.2f}/s" for t, v in rate.items()), flush=True)

        summary = {}
        for t in tools:
            rs = [r["tools"][t] for r in trials]
            lats = [r["latency"] for r in rs if r["ok"]]
            summary[t] = {
                "command": commands[t],
                "trials": len(rs),
                "ok": len(lats),
                "failed": len(rs) - len(lats) + (0 if rate[t]["still_waiting_at_end"] else 1),
                "median": statistics.median(lats) if lats else None,
                "p90": pct(lats, 90) if lats else None,
                "min": min(lats) if lats else None,
                "max": max(lats) if lats else None,
                "latencies": lats,
                "rate": rate[t],
            }
        out = {
            "trials": cfg["trials"],
            "publish_after": [lo, hi],
            "rate_window": [r_from, r_to],
            "seed": cfg.get("seed", 6),
            "pending_name": pending,
            "other_name": other,
            "verified": verified,
            "dnsmasq": {t: s["dns"].argv for t, s in servers.items()},
            "summary": summary,
            "raw": trials,
        }
        with open(out_path, "w") as f:
            json.dump(out, f, indent=1)
        failed = {t: v["failed"] for t, v in summary.items() if v["failed"]}
        if failed:
            # A waiter that did not write its config is a broken benchmark, not a slow one.
            for t in failed:
                if not rate[t]["still_waiting_at_end"]:
                    sys.stderr.write(f"{t} stopped waiting during the rate window\n")
                for r in trials:
                    if not r["tools"][t]["ok"]:
                        sys.stderr.write(f"{t} trial {r['trial']}: exit {r['tools'][t]['exit']}\n")
                        sys.stderr.write(errs[(t, r["trial"])].stderr()[-2000:])
                        break
            raise SystemExit(f"detect.py: waiters failed: {failed}")
    finally:
        sup.stop_all()


if __name__ == "__main__":
    main()
