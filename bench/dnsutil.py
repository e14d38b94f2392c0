#!/usr/bin/env python3
"""Small DNS helpers for bench/run.sh, standard library only, loopback only.

  dnsutil.py free-port ADDR                     print a port free for UDP and TCP on ADDR
  dnsutil.py wait ADDR PORT NAME EXPECT [SECS]  poll until NAME's A query answers EXPECT
                                                (noerror = an address, nxdomain = NXDOMAIN)
  dnsutil.py floor ADDR PORT NAMES_FILE OUT.json [--repeat N] [--window W] [--types A,AAAA]
                                                time one pipelined pass of A (+AAAA) queries
                                                for every name: the server's own floor
  dnsutil.py blackhole ADDR SECS PORT_FILE      bind a UDP port that never answers (bounded)
"""

import json
import socket
import statistics
import struct
import sys
import time

QTYPES = {"A": 1, "AAAA": 28}
NOERROR, NXDOMAIN = 0, 3


def free_port(addr):
    """A port that is free for both UDP and TCP on addr (dnsmasq binds both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((addr, 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((addr, port))
        except OSError:
            continue
        finally:
            t.close()
            u.close()
        return port
    raise SystemExit(f"no free port on {addr}")


def build_query(qid, name, qtype):
    header = struct.pack(">HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0)  # RD
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)


def parse(resp):
    qid, flags, _qd, an, _ns, _ar = struct.unpack(">HHHHHH", resp[:12])
    return qid, flags & 0xF, an


def ask(addr, port, name, qtype="A", timeout=0.5):
    """(rcode, answer count), or None on timeout / ICMP error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.send(build_query(4242, name, qtype))
        try:
            _qid, rcode, an = parse(s.recv(4096))
        except (socket.timeout, ConnectionRefusedError):
            return None
        return rcode, an


def wait(addr, port, name, expect, secs=5.0):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:  # bounded by secs
        last = ask(addr, port, name)
        if last is not None:
            rcode, an = last
            if expect == "noerror" and rcode == NOERROR and an >= 1:
                return
            if expect == "nxdomain" and rcode == NXDOMAIN:
                return
        time.sleep(0.02)
    raise SystemExit(f"{name} @ {addr}:{port}: expected {expect}, last answer {last}")


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
            _qid, rcode, _an = parse(s.recv(4096))
            if rcode != NOERROR:
                bad += 1
            got += 1
        elapsed = time.perf_counter() - t0
    if bad:
        raise SystemExit(f"floor: {bad} answers were not NOERROR")
    return elapsed


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "free-port":
        print(free_port(argv[2]))
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
        import os

        os.rename(port_file + ".tmp", port_file)
        time.sleep(secs)  # never reads: every query times out
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
