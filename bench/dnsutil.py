#!/usr/bin/env python3
"""DNS helpers for bench/run.sh and bench/profile.sh, on the shared harness (tests/harness),
loopback only.

  dnsutil.py dnsmasq NAME ADDR HOSTSDIR WORKDIR [ARG...]
                                                start dnsmasq for cluster.local on a free port of
                                                ADDR, records from HOSTSDIR, extra dnsmasq ARGs;
                                                logs WORKDIR/NAME.dnsmasq.{out,err}, PID recorded
                                                in WORKDIR/pids; once it answers, print
                                                "PORT PID COMMAND" and leave it running
  dnsutil.py wait ADDR PORT NAME EXPECT [SECS]  poll until NAME's A query answers EXPECT
                                                (noerror = an address, nxdomain = NXDOMAIN)
  dnsutil.py floor ADDR PORT NAMES_FILE OUT.json [--repeat N] [--window W] [--types A,AAAA]
                                                time one pipelined pass of A (+AAAA) queries
                                                for every name: the server's own floor
  dnsutil.py blackhole ADDR SECS PORT_FILE      bind a UDP port that never answers (bounded)
"""

import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the harness package
from harness import Failure  # noqa: E402
from harness.dns import NOERROR, NXDOMAIN, build_query, free_port, parse_header, query  # noqa: E402
from harness.dnsmasq import Dnsmasq  # noqa: E402
from harness.proc import Supervisor, wait_until  # noqa: E402


def start_dnsmasq(name, addr, hostsdir, workdir, extra):
    workdir = Path(workdir)
    sup = Supervisor(workdir, workdir / "pids")
    d = Dnsmasq(sup, f"{name}.dnsmasq", addr, free_port(addr), Path(hostsdir), extra=extra)
    return f"{d.port} {d.proc.pid} {d.command()}"


def ask(addr, port, name):
    """The Reply, or None on timeout / ICMP error."""
    try:
        return query((addr, port), name, timeout=0.5)
    except OSError:
        return None


def wait(addr, port, name, expect, secs=5.0):
    """Until NAME's A query answers `expect` ("noerror": an address, "nxdomain"); SystemExit after secs."""
    def answered():
        r = ask(addr, port, name)
        if r is None:
            return False
        return (expect == "noerror" and r.rcode == NOERROR and r.addrs) or (expect == "nxdomain" and r.rcode == NXDOMAIN)

    if not wait_until(answered, secs, 0.02):
        raise SystemExit(f"{name} @ {addr}:{port}: expected {expect}, last answer {ask(addr, port, name)}")


def floor(addr, port, names, types, window, timeout=2.0):
    """Seconds for one pass: every (name, type) query, at most `window` in flight."""
    queries = [build_query(i, n, t) for i, (n, t) in enumerate((n, t) for n in names for t in types)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sent = got = 0
        bad = 0
        t0 = time.perf_counter()
        while got < len(queries):
            while sent < len(queries) and sent - got < window:
                s.send(queries[sent])
                sent += 1
            _qid, rcode, _an = parse_header(s.recv(4096))
            if rcode != NOERROR:
                bad += 1
            got += 1
        elapsed = time.perf_counter() - t0
    if bad:
        raise SystemExit(f"floor: {bad} answers were not NOERROR")
    return elapsed


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "dnsmasq":
        try:
            print(start_dnsmasq(argv[2], argv[3], argv[4], argv[5], argv[6:]))
        except Failure as e:
            raise SystemExit(str(e)) from None
    elif cmd == "wait":
        wait(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]) if len(argv) > 6 else 5.0)
    elif cmd == "floor":
        addr, port, names_file, out = argv[2], int(argv[3]), argv[4], argv[5]
        opts = dict(zip(argv[6::2], argv[7::2]))
        repeat = int(opts.get("--repeat", 10))
        window = int(opts.get("--window", 128))
        types = opts.get("--types", "A,AAAA").split(",")
        with open(names_file) as f:
            names = [line.strip() for line in f if line.strip()]
        floor(addr, port, names, types, window)  # warm-up pass
        times = [floor(addr, port, names, types, window) for _ in range(repeat)]
        result = {
            "names": len(names),
            "types": types,
            "queries": len(names) * len(types),
            "window": window,
            "repeat": repeat,
            "times": times,
            "median": statistics.median(times),
            "min": min(times),
        }
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    elif cmd == "blackhole":
        addr, secs, port_file = argv[2], float(argv[3]), argv[4]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        with open(port_file + ".tmp", "w") as f:
            f.write(str(s.getsockname()[1]))
        os.rename(port_file + ".tmp", port_file)
        time.sleep(secs)  # never reads: every query times out
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
