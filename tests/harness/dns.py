"""The one DNS client of the harnesses: build a query, parse a reply, ask a server over UDP.

Enough of RFC 1035 for checking what a test server serves and for timing it: one question per
query (RD set), replies parsed for the id, the rcode and the A/AAAA addresses in the answer
section. Addresses with a colon are IPv6.
"""

import random
import socket
import struct
from collections import namedtuple

A, AAAA = 1, 28
QTYPES = {"A": A, "AAAA": AAAA}
NOERROR, NXDOMAIN = 0, 3

Reply = namedtuple("Reply", "rcode addrs")


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def build_query(qid, name, qtype=A):
    """A recursion-desired query for one name; qtype is a number or "A"/"AAAA"."""
    qtype = QTYPES.get(qtype, qtype)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


def parse_header(data):
    """(id, rcode, answer count) of a reply: all a timing loop needs."""
    qid, flags, _qd, an, _ns, _ar = struct.unpack(">HHHHHH", data[:12])
    return qid, flags & 0x0F, an


def _skip_name(data, off):
    while True:
        n = data[off]
        if n & 0xC0 == 0xC0:  # compression pointer: ends the name
            return off + 2
        if n == 0:
            return off + 1
        off += n + 1


def parse_reply(data):
    """Reply(rcode, [addresses of the A and AAAA answers, in order])."""
    _qid, rcode, ancount = parse_header(data)
    qdcount = struct.unpack(">H", data[4:6])[0]
    off = 12
    for _ in range(qdcount):
        off = _skip_name(data, off) + 4
    addrs = []
    for _ in range(ancount):
        off = _skip_name(data, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        if rtype == A:
            addrs.append(socket.inet_ntop(socket.AF_INET, data[off:off + rdlen]))
        elif rtype == AAAA:
            addrs.append(socket.inet_ntop(socket.AF_INET6, data[off:off + rdlen]))
        off += rdlen
    return Reply(rcode, addrs)


def query(server, name, qtype=A, timeout=1.0, netns=None):
    """Ask (addr, port) one question; the Reply. OSError (socket.timeout, ConnectionRefusedError
    from an ICMP port unreachable) if no reply comes. With `netns` (a harness.netns.NetNs), the
    question is asked from inside that network namespace."""
    packet = build_query(random.randint(0, 0xFFFF), name, qtype)
    sock = netns.socket(family(server[0]), socket.SOCK_DGRAM) if netns else socket.socket(family(server[0]), socket.SOCK_DGRAM)
    with sock as s:
        s.settimeout(timeout)
        s.connect(server)
        s.send(packet)
        while True:
            data = s.recv(4096)
            if data[:2] == packet[:2]:
                return parse_reply(data)


def free_port(addr):
    """A port free for both UDP and TCP on addr (a DNS server binds both)."""
    for _ in range(50):
        with socket.socket(family(addr), socket.SOCK_DGRAM) as u, socket.socket(family(addr), socket.SOCK_STREAM) as t:
            u.bind((addr, 0))
            port = u.getsockname()[1]
            try:
                t.bind((addr, port))
            except OSError:
                continue
            return port
    raise OSError(f"no port free for UDP and TCP on {addr}")


def await_server(proc, resolve, zone, what):
    """Returns once the server `proc` runs answers NXDOMAIN for probe.ZONE through `resolve`
    (5 s at most); else stops it and raises Failure with `what` and the end of its stderr."""
    from harness import Failure
    from harness.proc import wait_until

    def answers():
        try:
            return not proc.running() or resolve(f"probe.{zone}", timeout=0.2).rcode == NXDOMAIN
        except OSError:
            return False

    if not wait_until(answers, 5.0) or not proc.running():
        proc.stop()
        raise Failure(f"{what} did not start: {proc.stderr().strip()[-800:]}")

