"""Scenario kafka-cluster: `manifests/examples/kafka` as a real Kafka cluster in KRaft mode (Kafka
4.1.1's jars from Maven Central, tests/e2e/kafka-jars.sh), three combined broker + controller
nodes, each in a network namespace of its own: every pod formats its storage with the same
derived cluster id, a topic with replication factor 3 is produced on one broker and consumed
from another, and a pod re-created with a new IP comes back into the ISR. The init container
sees the first boot and the restart through `--data-path` (the log dir that the format step
creates, on the data volume mounted read-only in the init).

How this differs from the manifest's image: the main container's command runs unchanged
(`/bin/sh -c "kafka-storage.sh format --ignore-formatted ... && exec kafka-server-start.sh ..."`),
with the two scripts replaced by shims that run the same main classes (kafka.tools.StorageTool,
kafka.Kafka) with the host's JRE on the jars bound at /opt/kafka/libs."""

import random
import time
from pathlib import Path

from harness import check, images
from harness.images import JAVA, JAVA_FILES, KAFKA_JVM as JVM, KAFKA_LIBS as LIBS
from harness.proc import run as run_cmd, wait_until

from .common import Cluster, example_on_podnet, log
from .datastores import boot

FORM_WITHIN = 120.0


def shims(workdir: Path):
    """kafka-storage.sh and kafka-server-start.sh as the image has them, for the host's JRE, and
    its jars: the image table's apache/kafka files but the JRE's (JAVA_FILES, added by callers)."""
    return [f for f in images.program_for("apache/kafka").bound_files(workdir) if f not in JAVA_FILES]


def start_kafka(pod, files):
    """The pod's kafka container: the manifest's command, unchanged, with the shims (`files`:
    shims(workdir) + JAVA_FILES) bound where the image has its scripts and jars."""
    return pod.start_container(pod.main_container(), files=files)


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed mid-reply")
        buf += chunk
    return buf


def brokers(net, pod, timeout=2.0):
    """The brokers this broker's Metadata answer lists (Kafka protocol, Metadata v1, no topics),
    as sorted (node id, advertised host) pairs, or None if it cannot be asked. A KRaft broker
    lists only the brokers registered with the active controller and not fenced: all 3 means a
    controller leader was elected by the voters and every broker caught up and registered."""
    import struct
    client = b"peerconf-bench"
    body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", 0)
    try:
        with net.node_ns.connect(pod.ip, 9092, timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv(s, 4))
            data = _recv(s, size)
    except OSError:
        return None
    (corr, count), off = struct.unpack_from(">ii", data, 0), 8
    if corr != 7:
        return None
    out = []
    for _ in range(count):
        node_id, hlen = struct.unpack_from(">ih", data, off)
        off += 6
        host = data[off:off + hlen].decode()
        off += hlen + 4  # port
        (rlen,) = struct.unpack_from(">h", data, off)
        off += 2 + max(rlen, 0)
        out.append((node_id, host))
    return sorted(out)


def registered(net, pods):
    """Every broker lists all of them, each by its pod's index and FQDN (see brokers())."""
    want = sorted((i, p.fqdn) for i, p in enumerate(pods))
    return all(brokers(net, p) == want for p in pods)


def tool(net, cls, *args, timeout=60):
    argv = [JAVA, *JVM.split(), "-Xmx256m", "-cp", f"{LIBS}/*", cls, *args]
    return run_cmd(net.node_cmd(argv), timeout=timeout, check_rc=False)


def run(k: Cluster):
    """Real Kafka KRaft cluster: one derived cluster id, RF=3 topic produced on one broker and consumed on another, a re-created pod rejoins the ISR."""
    check(LIBS.is_dir() and any(LIBS.glob("kafka_2.13-*.jar")), f"no Kafka jars in {LIBS}: run tests/e2e/kafka-jars.sh")
    files = shims(k.workdir) + JAVA_FILES
    docs, sts, net, pods = example_on_podnet(k, "kafka", "e2e-kafka", 13)

    def start(pod):
        return start_kafka(pod, files)

    t0 = time.monotonic()
    offsets = [random.uniform(0, 3) for _ in pods]
    mains = boot(net, pods, offsets, start)
    for p in pods:
        check("/var/lib/kafka/data/logs: does not exist (a first boot)" in p.init.stdout() + p.init.stderr(),
              f"{p.name}: the init did not see a first boot (--data-path)\n{p.init.tail()}")
    ids = {p.name: p.host_path("/config/cluster.id", p.main_container()).read_text().strip() for p in pods}
    check(len(set(ids.values())) == 1 and len(next(iter(ids.values()))) == 22, f"cluster ids differ: {ids}")
    cluster_id = next(iter(ids.values()))
    topic = f"e2e-{random.randint(0, 1 << 30)}"
    boot0 = f"{pods[0].fqdn}:9092"

    def created():
        for name, proc in mains.items():
            check(proc.running(), f"{name}: kafka exited {proc.returncode}\n{proc.tail(30)}")
        r = tool(net, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", boot0, "--create",
                 "--if-not-exists", "--topic", topic, "--partitions", "1", "--replication-factor", "3")
        return r.returncode == 0

    check(wait_until(created, FORM_WITHIN, 1.0), f"topic {topic} (RF 3) not created within {FORM_WITHIN:.0f}s")
    # Each node's storage was formatted (by the main container's format step) with that id.
    for p in pods:
        meta = p.volume("data") / "logs" / "meta.properties"
        check(f"cluster.id={cluster_id}" in meta.read_text().splitlines(),
              f"{p.name}: {meta} does not hold cluster.id={cluster_id}")
    log(f"cluster id {cluster_id} in every pod's cluster.id and formatted storage (meta.properties); topic {topic} with replication factor 3 created "
        f"{time.monotonic() - t0:.1f}s after the inits started (records at {', '.join(f'{o:.1f}' for o in offsets)}s)")

    def isr(bootstrap):
        r = tool(net, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--describe", "--topic", topic)
        for line in r.stdout.splitlines():
            if "Isr:" in line:
                return sorted(line.split("Isr:")[1].split()[0].split(","))
        return None

    check(wait_until(lambda: isr(boot0) == ["0", "1", "2"], 60, 1.0), f"ISR of {topic} is not 0,1,2: {isr(boot0)}")
    message = f"hello-{random.randint(0, 1 << 30)}"
    r = run_cmd(net.node_cmd(["sh", "-c", f'echo {message} | exec "$0" "$@"', JAVA, *JVM.split(), "-Xmx256m", "-cp",
                              f"{LIBS}/*", "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", boot0,
                              "--topic", topic, "--producer-property", "acks=all"]), timeout=60, check_rc=False)
    check(r.returncode == 0, f"producing on {pods[0].name}: {r.returncode}\n{r.stdout}\n{r.stderr}")

    def consumed(bootstrap):
        r = tool(net, "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", topic,
                 "--from-beginning", "--max-messages", "1", "--timeout-ms", "20000", timeout=60)
        return message in r.stdout.split()

    check(consumed(f"{pods[2].fqdn}:9092"), f"{message} produced on {pods[0].name} not consumed from {pods[2].name}")
    log(f"{message} produced on {pods[0].name} (acks=all) consumed from {pods[2].name}; ISR 0,1,2")

    old = pods[1]
    new = net.recreate(old, net.ip(13, 31))
    pods[1] = new
    t1 = time.monotonic()
    net.publish(new)
    new.start_init()
    check(new.init.wait(30) == 0, f"{new.name}: init exited {new.init.returncode}\n{new.init.tail()}")
    check("/var/lib/kafka/data/logs: exists (a restart)" in new.init.stdout() + new.init.stderr(),
          f"{new.name}: the init did not see a restart (--data-path)\n{new.init.tail()}")
    mains[new.name] = start(new)
    # Asked of the re-created broker itself: it answers metadata at its new address.
    check(wait_until(lambda: mains[new.name].running() and isr(f"{new.fqdn}:9092") == ["0", "1", "2"], FORM_WITHIN, 2.0),
          f"{new.name} with new IP {new.ip} not back in the ISR of {topic}: {isr(boot0)}\n{mains[new.name].tail(30)}")
    check(consumed(f"{new.fqdn}:9092"), f"{message} not consumed from the re-created {new.name}")
    log(f"{new.name} re-created with new IP {new.ip}: back in the ISR {time.monotonic() - t1:.1f}s later "
        f"(its storage kept its format), and {message} is consumed from it")
    for p in pods:
        net.delete(p)
