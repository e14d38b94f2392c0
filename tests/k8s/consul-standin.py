#!/usr/bin/python3
"""Stands in for `consul agent -config-file=FILE` where Consul is not installed (tests/k8s).

It is NOT Consul: it forms no cluster and serves no API. It checks that FILE is a JSON object
with the keys peerconf renders for the shipped base (bootstrap_expect, retry_join, bind_addr),
prints it on one line (so the suite can read what the pod was started with), and stays up until
SIGTERM, so that the pod is Running. Any other subcommand (`consul leave`, `consul members`)
exits 1 saying it is a stand-in."""

import json
import signal
import sys


def main(argv):
    if len(argv) < 1 or argv[0] != "agent":
        print(f"consul-standin: `consul {' '.join(argv)}` is not available (Consul is not installed)", file=sys.stderr)
        return 1
    files = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("-config-file=")]
    if len(files) != 1:
        print(f"consul-standin: expected one -config-file=, got {argv}", file=sys.stderr)
        return 2
    with open(files[0]) as f:
        config = json.load(f)
    missing = [k for k in ("bootstrap_expect", "retry_join", "bind_addr") if k not in config]
    if missing:
        print(f"consul-standin: {files[0]} lacks {missing}", file=sys.stderr)
        return 2
    print("consul-standin: config " + json.dumps(config, sort_keys=True), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
