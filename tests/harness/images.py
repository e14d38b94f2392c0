"""The one table from container images to the programs on this machine that run in their place,
for every pod-running harness (tests/k8s's node agent, tests/e2e's scenarios, bench/, which
imports the e2e start functions).

No container runtime and no registry are reachable here, so each image a manifest names runs as
a local program in the pod sandbox (tests/harness/pod-sandbox.sh, on the host's read-only /usr):

  ghcr.io/peerconf/peerconf     peerconf's own binary (target/release or PEERCONF_BIN), at the
                                ENTRYPOINT path of the Dockerfile, as the Dockerfile's USER unless
                                the pod says (peerconf(): the Node holds binary and Dockerfile)
  gcr.io/etcd-development/etcd  Debian's etcd 3.4 (etcd-server)
  zookeeper                     Debian's ZooKeeper 3.8 jar on the JRE, as `zkServer.sh
                                start-foreground` runs it (the image's default command)
  nats                          Debian's nats-server 2.9
  redis                         Debian's redis-server / redis-sentinel / redis-cli 7.0
  rabbitmq                      Debian's rabbitmq-server 3.10 (Erlang 25), with its rabbitmqctl
                                and epmd
  apache/kafka                  Kafka's jars (tests/e2e/kafka-jars.sh) on the host's JRE, through
                                kafka-storage.sh and kafka-server-start.sh as the image has them
                                (scripts running the same main classes)
  hashicorp/consul              Consul v1.14.11, built from the Go module proxy by
                                tests/consul/build.sh (the newest MPL-2.0 release whose module
                                graph avoids the not-to-use modules; the manifest's tag, 1.22,
                                is BSL and is not what runs here). Bound at CONSUL_PATH, since
                                the image's /bin is the host's read-only /usr/bin here; the
                                manifest's `consul` (command, preStop `consul leave`) maps to it.
                                The readiness probe's /bin/sh, curl and grep are the host's
                                (the image, Alpine-based, has busybox's sh and grep, and its
                                Dockerfile adds curl). use_consul() names the binary.

Every entry names the programs the image's commands map to (argv[0], by path or by name), the
image's default command, the files of the image the host must provide (bound read-only where the
image has them; `scripts` are written under the node's work dir first), and the env the image
sets. A container whose image is not in the table fails the pod with a message. Host-side tools
that stand in for the images' own (the ZooKeeper CLI, Kafka's tools) are defined here too, so no
program path is written twice.
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
# /usr/bin/java is an alternatives link through /etc: the real path is under /usr.
JAVA = os.path.realpath(shutil.which("java") or "/usr/bin/java")

# The official zookeeper image's default command is `zkServer.sh start-foreground`, which runs
# QuorumPeerMain on $ZOOCFGDIR/zoo.cfg with a 1000 MB heap, $SERVER_JVMFLAGS and $JVMFLAGS, and
# logs to the console. The same, with Debian's ZooKeeper 3.8 jar on the host.
ZK_SERVER = ["/bin/sh", "-c",
             f'exec {JAVA} -Dzookeeper.log.dir=/tmp -Dzookeeper.root.logger=INFO,CONSOLE -Xmx1000m '
             '-XX:+UseSerialGC -XX:TieredStopAtLevel=1 '
             '-cp /conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar '
             '$SERVER_JVMFLAGS $JVMFLAGS org.apache.zookeeper.server.quorum.QuorumPeerMain /conf/zoo.cfg']
# The image's zkCli.sh, run on the node (host side).
ZK_CLI = [JAVA, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dzookeeper.root.logger=WARN,CONSOLE",
          "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar", "org.apache.zookeeper.ZooKeeperMain"]

KAFKA_VERSION = "4.1.1"
KAFKA_LIBS = Path(os.environ.get("PEERCONF_KAFKA_LIBS", f"/var/cache/peerconf-kafka/{KAFKA_VERSION}/libs"))
KAFKA_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData"
# kafka-storage.sh (the manifest's format step) and kafka-server-start.sh as the image has them,
# for the host's JRE on the jars bound at /opt/kafka/libs.
KAFKA_SCRIPTS = {
    "/opt/kafka/bin/kafka-storage.sh":
        f'exec {JAVA} {KAFKA_JVM} -Xmx256m -cp "/opt/kafka/libs/*" kafka.tools.StorageTool "$@"\n',
    "/opt/kafka/bin/kafka-server-start.sh":
        f'exec {JAVA} {KAFKA_JVM} $KAFKA_HEAP_OPTS -Dlog4j2.level=WARN -cp "/opt/kafka/libs/*" kafka.Kafka "$@"\n',
}

CONSUL_PATH = "/opt/consul/bin/consul"
PEERCONF_IMAGE = "ghcr.io/peerconf/peerconf"


@dataclass
class Program:
    programs: dict = field(default_factory=dict)  # argv[0] (or its basename) -> host path
    default_command: list | None = None  # the image's CMD/ENTRYPOINT when the manifest has none
    files: list = field(default_factory=list)  # (host path, image path), bound read-only
    scripts: dict = field(default_factory=dict)  # image path -> /bin/sh script body, bound read-only
    env: dict = field(default_factory=dict)  # what the image's ENV sets (the manifest's env wins)

    def argv(self, argv):
        """The manifest's argv with argv[0] mapped to the host program."""
        if not argv:
            if self.default_command is None:
                raise Failure("no command in the manifest and no default command for the image")
            return list(self.default_command)
        head = self.programs.get(argv[0]) or self.programs.get(argv[0].rsplit("/", 1)[-1])
        return [head or argv[0], *argv[1:]]

    def bound_files(self, workdir: Path):
        """`files`, plus each of `scripts` written once under `workdir` (world-readable, for the
        container's user): every (host path, image path) to bind read-only."""
        out = []
        if self.scripts:
            d = Path(workdir) / "image-scripts"
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o755)
            for path, body in self.scripts.items():
                host = d / path.strip("/").replace("/", "_")
                if not host.exists():
                    host.write_text("#!/bin/sh\n" + body)
                    os.chmod(host, 0o755)
                out.append((str(host), path))
        return out + list(self.files)


IMAGES = {
    "gcr.io/etcd-development/etcd": Program({"etcd": "/usr/bin/etcd", "etcdctl": "/usr/bin/etcdctl"}, files=NSS),
    "zookeeper": Program(default_command=ZK_SERVER, files=ZK_FILES),
    "nats": Program({"nats-server": "/usr/sbin/nats-server"}, files=NSS),
    "redis": Program({"redis-server": "/usr/bin/redis-server", "redis-sentinel": "/usr/bin/redis-sentinel",
                      "redis-cli": "/usr/bin/redis-cli"}, files=NSS),
    # epmd: which `erl` would start as a daemon, outside the harness's reach; tests/e2e starts it
    # first as a process of the pod's own (rabbitmq_cluster.start_rabbitmq).
    "rabbitmq": Program({"rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
                         "rabbitmqctl": "/usr/lib/rabbitmq/bin/rabbitmqctl",
                         "epmd": os.path.realpath("/usr/bin/epmd")}, files=NSS),
    "apache/kafka": Program(files=[(str(KAFKA_LIBS), "/opt/kafka/libs")] + JAVA_FILES, scripts=KAFKA_SCRIPTS),
}


def peerconf(binary, image) -> Program:
    """PEERCONF_IMAGE's entry: the binary at the Dockerfile's ENTRYPOINT path (`image`, a
    harness.manifests.Image), its ENTRYPOINT the default command."""
    return Program(default_command=list(image.entrypoint), files=[(binary, image.entrypoint[0])])


CONSUL_BIN = None


def consul_binary():
    """The host path of the Consul binary use_consul() was given (the suite's own consul CLI)."""
    if CONSUL_BIN is None:
        raise Failure("no Consul binary given (run.sh passes --consul from tests/consul/build.sh)")
    return CONSUL_BIN


def use_consul(binary):
    """Map hashicorp/consul to this Consul binary (tests/k8s/run.sh passes the one
    tests/consul/build.sh prints). Without it, a Consul pod fails with a message saying so."""
    global CONSUL_BIN
    binary = CONSUL_BIN = str(Path(binary).resolve())
    IMAGES["hashicorp/consul"] = Program({"consul": CONSUL_PATH}, files=NSS + [(binary, CONSUL_PATH)])
    return binary


def program_for(repo) -> Program:
    if repo == "hashicorp/consul" and repo not in IMAGES:
        raise Failure("image hashicorp/consul: no Consul binary given (images.use_consul(PATH) with the path "
                      "tests/consul/build.sh prints; run.sh passes it to suite.py as --consul)")
    if repo not in IMAGES:
        raise Failure(f"image {repo} has no local program in tests/harness/images.py")
    return IMAGES[repo]
