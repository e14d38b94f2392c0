"""The one table from container images to the programs on this machine that stand in for them.

No container runtime and no registry are reachable here, so each image a manifest names runs as
a local program in the pod sandbox (tests/harness/pod-sandbox.sh, on the host's read-only /usr):

  ghcr.io/peerconf/peerconf     peerconf's own binary (target/release), at the ENTRYPOINT path
                                of the Dockerfile, as the Dockerfile's USER unless the pod says
  gcr.io/etcd-development/etcd  Debian's etcd 3.4 (etcd-server)
  zookeeper                     Debian's ZooKeeper 3.8 jar on the JRE, as `zkServer.sh
                                start-foreground` runs it (the image's default command)
  nats                          Debian's nats-server 2.9
  redis                         Debian's redis-server / redis-sentinel / redis-cli 7.0
  hashicorp/consul              NOT Consul (not packaged in Debian; a Consul build is another
                                engineer's work): consul-standin.py, which checks that
                                -config-file is JSON with the keys peerconf renders, prints it,
                                and stays up until SIGTERM. `consul leave` and other subcommands
                                exit 1. Consul pods are Running, never Ready (no leader exists).

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
STANDIN = Path(__file__).resolve().with_name("consul-standin.py")
STANDIN_PATH = "/opt/peerconf-test/bin/consul"


@dataclass
class Program:
    programs: dict = field(default_factory=dict)  # argv[0] (or its basename) -> host path
    default_command: list | None = None  # the image's CMD/ENTRYPOINT when the manifest has none
    files: list = field(default_factory=list)  # (host path, image path), bound read-only
    stand_in: str | None = None  # set when the program is not the real thing: says what it is

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
    "hashicorp/consul": Program({"consul": STANDIN_PATH}, files=[(str(STANDIN), STANDIN_PATH)],
                                stand_in="consul-standin.py (Consul is not packaged here)"),
}


def program_for(repo) -> Program:
    if repo not in IMAGES:
        raise Failure(f"image {repo} has no local program in tests/k8s/images.py")
    return IMAGES[repo]
