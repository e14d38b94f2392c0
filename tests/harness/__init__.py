"""The shared harness of peerconf's Python test suites: tests/e2e, ci/check_manifests.py, bench/.

    proc       child processes: started and stopped by PID, logged to files, bounded waits
    dns        the one DNS client: build a query, parse a reply (rcode, A/AAAA answers), ask
    dnsmasq    a real DNS server for one zone, records published through a hosts directory
    manifests  kustomize output and the image's ENTRYPOINT/USER from the Dockerfile
    images     the one table from container images to the local programs that run in their place
    pods       the one kubelet emulation: a StatefulSet pod's volumes, env, DNS files, identity,
               and its containers run in a sandbox (pod-sandbox.sh)

Put the repository's tests/ directory on sys.path, then `from harness import ...`.
Standard library and PyYAML only.
"""


class Failure(AssertionError):
    """A harness or suite expectation did not hold; the message says what and why."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)
