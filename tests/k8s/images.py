"""The one table from container images to the programs on this machine that run in their place.

No container runtime and no registry are reachable here, so each image a manifest names runs as
a local program in the pod sandbox (tests/harness/pod-sandbox.sh, on the host's read-only /usr):

  ghcr.io/peerconf/peerconf     peerconf's own binary (target/release), at the ENTRYPOINT path
                                of the Dockerfile, as the Dockerfile's USER unless the pod says
  gcr.io/etcd-development/etcd  Debian's etcd 3.4 (etcd-server)
  zookeeper                     Debian's ZooKeeper 3.8 jar on the JRE, as `zkServer.sh
                                start-foreground` runs it (the image's default command)
  nats                          Debian's nats-server 2.9
  redis                         Debian's redis-server / redis-sentinel / redis-cli 7.0
  hashicorp/consul              Consul v1.14.11, built from the Go module proxy by
                                tests/consul/build.sh (the newest MPL-2.0 release whose module
                                graph avoids the not-to-use modules; the manifest's tag, 1.22,
                                is BSL and is not what runs here). Bound at CONSUL_PATH, since
                                the image's /bin is the host's read-only /usr/bin here; the
                                manifest's `consul` (command, preStop `consul leave`) maps to it.
                                The readiness probe's /bin/sh, curl and grep are the host's
                                (the image, Alpine-based, has busybox's sh and grep, and its
                                Dockerfile adds curl).

Every entry names the files of the image the host must provide (bound read-only where the image
has them). A container whose image is not in the table fails the pod with a message.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness import Failure

NSS = [("/etc/nsswitch.conf", "/etc/nsswitch.conf")]
JAVA_FILES = [("/etc/java-17-openjdk", "/etc/java-17-openjdk")] + NSS
# The image's readiness probe runs `nc`; Debian's /usr/bin/nc is an alternatives link through /etc.
NC = [("/etc/alternatives/nc", "/etc/alternatives/nc")]
ZK_FILES = JAVA_FILES + NC + [("/etc/zookeeper/conf/log4j.properties", "/conf/log4j.properties")]
JAVA = os.path.realpath(shutil.which("java") or "/usr/bin/java")
# What the zookeeper image's `zkServer.sh start-foreground` runs (same as tests/e2e).
ZK_SERVER = ["/bin/sh", "-c",
             f'exec {JAVA} -Dzookeeper.log.dir=/tmp -Dzookeeper.root.logger=INFO,CONSOLE -Xmx1000m '
             '-XX:+UseSerialGC -XX:TieredStopAtLevel=1 '
             '-cp /conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar '
             '$SERVER_JVMFLAGS $JVMFLAGS org.apache.zookeeper.server.quorum.QuorumPeerMain /conf/zoo.cfg']
CONSUL_PATH = "/opt/consul/bin/consul"


@dataclass
class Program:
    programs: dict = field(default_factory=dict)  # argv[0] (or its basename) -> host path
    default_command: list | None = None  # the image's CMD/ENTRYPOINT when the manifest has none
    files: list = field(default_factory=list)  # (host path, image path), bound read-only

    def argv(self, argv):
        """The manifest's argv with argv[0] mapped to the host program."""
        if not argv:
            if self.default_command is None:
                raise Failure("no command in the manifest and no default command for the image")
            return list(self.default_command)
        head = self.programs.get(argv[0]) or self.programs.get(argv[0].rsplit("/", 1)[-1])
        return [head or argv[0], *argv[1:]]


IMAGES = {
    "gcr.io/etcd-development/etcd": Program({"etcd": "/usr/bin/etcd", "etcdctl": "/usr/bin/etcdctl"}, files=NSS),
    "zookeeper": Program(default_command=ZK_SERVER, files=ZK_FILES),
    "nats": Program({"nats-server": "/usr/sbin/nats-server"}, files=NSS),
    "redis": Program({"redis-server": "/usr/bin/redis-server", "redis-sentinel": "/usr/bin/redis-sentinel",
                      "redis-cli": "/usr/bin/redis-cli"}, files=NSS),
}


CONSUL_BIN = None


def consul_binary():
    """The host path of the Consul binary use_consul() was given (the suite's own consul CLI)."""
    if CONSUL_BIN is None:
        raise Failure("no Consul binary given (run.sh passes --consul from tests/consul/build.sh)")
    return CONSUL_BIN


def use_consul(binary):
    """Map hashicorp/consul to this Consul binary (run.sh passes the one tests/consul/build.sh
    prints). Without it, a Consul pod fails with a message saying so."""
    global CONSUL_BIN
    binary = CONSUL_BIN = str(Path(binary).resolve())
    IMAGES["hashicorp/consul"] = Program({"consul": CONSUL_PATH}, files=NSS + [(binary, CONSUL_PATH)])
    return binary


def program_for(repo) -> Program:
    if repo == "hashicorp/consul" and repo not in IMAGES:
        raise Failure("image hashicorp/consul: no Consul binary given (images.use_consul(PATH) with the path "
                      "tests/consul/build.sh prints; run.sh passes it to suite.py as --consul)")
    if repo not in IMAGES:
        raise Failure(f"image {repo} has no local program in tests/k8s/images.py")
    return IMAGES[repo]
