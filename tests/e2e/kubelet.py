#!/usr/bin/env python3
"""peerconf end-to-end suite: this machine plays the kubelet (issue 5).

Started by tests/e2e/run.sh, which installs the tools, builds the release binary and passes:

    kubelet.py --workdir DIR --bin PATH [--repo DIR] [SCENARIO...]

What is real: the kustomize-built manifests, the peerconf binary (run from a read-only root as the
manifest's uid, with the manifest's args and the env a kubelet injects), a DNS server (dnsmasq)
whose records appear as pods get IPs, and a 3-member etcd cluster started from the configs
peerconf wrote. What is simulated: the API server, the scheduler and the network (every pod gets
its own 127.x address on this machine's loopback).

Every process it starts is recorded (PID) in WORKDIR/pids and stopped by PID on exit, error or
signal; every mount lives in a private mount namespace that dies with its process.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SANDBOX = HERE / "pod-sandbox.sh"
CLUSTER_DOMAIN = "cluster.local"
PEERCONF_IMAGE = "ghcr.io/peerconf/peerconf"
# Upper bound for "the init noticed the record": --max-interval (1 s, the manifests keep the
# default) plus scheduling slack on a loaded 2-core machine. Measured here: 0.1-1.0 s.
NOTICE = 5.0


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# --------------------------------------------------------------------------------------------
# Output and time

T0 = time.monotonic()
_scenario_t0 = [T0]


def log(msg):
    print(f"   +{time.monotonic() - _scenario_t0[0]:6.2f}s {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Processes: every one recorded by PID, stopped by PID


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_stop = {"depth": 0, "pending": None}


def on_stop_signal(signum, _frame):
    """SIGTERM/SIGINT/SIGHUP: unwind (finally blocks and atexit stop every child), unless a
    child is being started, then right after."""
    if _stop["depth"]:
        _stop["pending"] = signum
    else:
        raise SystemExit(128 + signum)


class deferred_stop:
    def __enter__(self):
        _stop["depth"] += 1

    def __exit__(self, *exc):
        _stop["depth"] -= 1
        if not _stop["depth"] and _stop["pending"]:
            raise SystemExit(128 + _stop["pending"])


def proc_starttime(pid):
    """Field 22 of /proc/PID/stat: with the PID, it names one process (PIDs get reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


class Proc:
    """A child process with its exit time recorded the moment it exits (a waiter thread)."""

    registry: list["Proc"] = []
    pidfile: Path | None = None
    logdir: Path | None = None

    def __init__(self, name, argv, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.out_path = Proc.logdir / f"{name}.out"
        self.err_path = Proc.logdir / f"{name}.err"
        n = 1
        while self.out_path.exists():
            n += 1
            self.out_path = Proc.logdir / f"{name}.{n}.out"
            self.err_path = Proc.logdir / f"{name}.{n}.err"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.started = time.monotonic()
        # No stop between starting the child and recording its PID (that would leak it): the
        # handler defers while this runs. (Blocking the signals instead would hand the blocked
        # mask down to the child.)
        with deferred_stop():
            self._spawn(name, argv, env, cwd)
        threading.Thread(target=self._wait, daemon=True).start()

    def _spawn(self, name, argv, env, cwd):
        self.p = subprocess.Popen(
            self.argv,
            env=env if env is not None else os.environ.copy(),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )
        self.pid = self.p.pid
        self.killed = False
        self.exited_at = None
        self.returncode = None
        self._done = threading.Event()
        Proc.registry.append(self)
        with open(Proc.pidfile, "a") as f:  # run.sh's last resort if this driver is killed hard
            f.write(f"{self.pid} {proc_starttime(self.pid)} {name}\n")

    def _wait(self):
        rc = self.p.wait()
        self.exited_at = time.monotonic()
        self.returncode = rc
        self._out.close()
        self._err.close()
        self._done.set()

    def running(self):
        return not self._done.is_set()

    def wait(self, timeout):
        """Return the exit code, or None if still running after timeout seconds."""
        self._done.wait(timeout)
        return self.returncode

    def stop(self, grace=5.0):
        if not self.running():
            return
        try:
            self.p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self._done.wait(grace):
            return
        self.killed = True
        try:
            self.p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._done.wait(5)

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def tail(self, n=15):
        lines = (self.stderr() + self.stdout()).splitlines()
        return "\n".join(f"      | {line}" for line in lines[-n:])

    @classmethod
    def stop_all(cls):
        live = [p for p in cls.registry if p.running()]
        for p in live:
            try:
                p.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in live:
            p._done.wait(max(0.0, deadline - time.monotonic()))
        for p in live:
            if p.running():
                p.killed = True
                try:
                    p.p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p._done.wait(5)


def run(argv, timeout=30, env=None, check_rc=True):
    r = subprocess.run(
        [str(a) for a in argv], env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=timeout,
    )
    if check_rc and r.returncode != 0:
        raise Failure(f"{' '.join(map(str, argv))} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


# --------------------------------------------------------------------------------------------
# DNS: a tiny client, and dnsmasq serving the cluster zone from a hosts directory


def dns_query(server, name, qtype=1, timeout=1.0):
    """One UDP query; returns (rcode, [addresses])."""
    tid = random.randint(0, 0xFFFF)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, server)
        while True:
            data, _ = s.recvfrom(4096)
            if data[:2] == packet[:2]:
                break
    rcode = data[3] & 0x0F
    ancount = struct.unpack(">H", data[6:8])[0]
    off = 12 + len(qname) + 4
    addrs = []
    for _ in range(ancount):
        if data[off] & 0xC0 == 0xC0:
            off += 2
        else:
            while data[off]:
                off += data[off] + 1
            off += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        if rtype == 1:
            addrs.append(socket.inet_ntop(socket.AF_INET, data[off:off + rdlen]))
        elif rtype == 28:
            addrs.append(socket.inet_ntop(socket.AF_INET6, data[off:off + rdlen]))
        off += rdlen
    return rcode, addrs


class Dns:
    """dnsmasq on port 53 of a dedicated loopback address (a resolv.conf nameserver line has no
    port), authoritative-only for cluster.local, records from files in a hosts directory."""

    def __init__(self, workdir: Path, net: int):
        self.hostsdir = workdir / "dns" / "hosts"
        self.hostsdir.mkdir(parents=True)
        os.chmod(self.hostsdir.parent, 0o755)
        os.chmod(self.hostsdir, 0o755)
        self.logfile = workdir / "dns" / "dnsmasq.log"
        last = ""
        for attempt in range(8):
            ip = f"127.{net}.53.{53 + attempt}"
            proc = Proc(
                "dnsmasq",
                [
                    "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
                    f"--listen-address={ip}", "--port=53", "--bind-interfaces",
                    "--no-resolv", "--no-hosts", f"--local=/{CLUSTER_DOMAIN}/",
                    f"--hostsdir={self.hostsdir}", "--log-queries",
                    f"--log-facility={self.logfile}",
                ],
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and proc.running():
                try:
                    rcode, _ = dns_query((ip, 53), f"probe.{CLUSTER_DOMAIN}", timeout=0.2)
                    if rcode == 3:
                        self.ip, self.proc = ip, proc
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            last = proc.stderr().strip()
            proc.stop()
        raise Failure(f"dnsmasq did not start on 127.{net}.53.x:53: {last}")

    def resolve(self, name):
        return dns_query((self.ip, 53), name)

    @staticmethod
    def _key(fqdn):
        return fqdn.rstrip(".")

    def publish(self, fqdn, ip):
        """What the endpoints controller does when a pod gets an IP (publishNotReadyAddresses):
        write a dot-file, then rename it into place; the very next query sees it."""
        key = self._key(fqdn)
        tmp = self.hostsdir / f".{key}.tmp"
        tmp.write_text(f"{ip} {key}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hostsdir / key)
        deadline = time.monotonic() + 2
        while True:
            rcode, addrs = self.resolve(key)
            if rcode == 0 and addrs == [ip]:
                return
            check(time.monotonic() < deadline, f"dnsmasq does not serve {key} -> {ip} (got {rcode} {addrs})")
            time.sleep(0.01)

    def unpublish(self, fqdn):
        key = self._key(fqdn)
        (self.hostsdir / key).unlink(missing_ok=True)

    def log_mark(self):
        try:
            return self.logfile.stat().st_size
        except FileNotFoundError:
            return 0

    def queried_names(self, since=0):
        """Names asked for since a log_mark(), from dnsmasq's query log."""
        with open(self.logfile, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return re.findall(r"query\[(\w+)\] (\S+) from", text)


# --------------------------------------------------------------------------------------------
# Manifests


def kustomize(path):
    r = run(["kubectl", "kustomize", path], timeout=60)
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    check(len(found) == 1, f"expected exactly one {kind} {name or ''} in the built manifests, found {len(found)}")
    return found[0]


def image_entrypoint(repo: Path):
    """ENTRYPOINT of the peerconf image, from the Dockerfile (what runs when a container of that
    image has no `command`)."""
    text = (repo / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", final, re.M)
    check(m is not None, "Dockerfile: no ENTRYPOINT [...] in the final stage")
    return json.loads(m.group(1))


# --------------------------------------------------------------------------------------------
# The kubelet


def k8s_timestamp_dir():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{random.randint(0, 999_999_999):09d}"


class Pod:
    """One pod of a StatefulSet on this 'node': its volumes, resolv.conf, /etc/hosts, and its
    peerconf init container run exactly as the manifest writes it."""

    seq = 0

    def __init__(self, kubelet, docs, sts, ordinal, ip, namespace):
        Pod.seq += 1
        self.k = kubelet
        self.docs = docs
        self.sts = sts
        self.ordinal = ordinal
        self.ip = ip
        self.namespace = namespace
        self.name = f"{sts['metadata']['name']}-{ordinal}"
        self.service = sts["spec"]["serviceName"]
        self.fqdn = f"{self.name}.{self.service}.{namespace}.svc.{CLUSTER_DOMAIN}"
        self.spec = sts["spec"]["template"]["spec"]
        self.uid = f"{self.name}-{Pod.seq}"
        self.dir = kubelet.workdir / "pods" / namespace / self.uid
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir.parent, 0o755)
        self.psc = self.spec.get("securityContext", {}) or {}
        self.fs_group = self.psc.get("fsGroup")
        self.volumes = {}
        for vol in self.spec.get("volumes", []):
            self.volumes[vol["name"]] = self._materialise(vol)
        self._write_resolv_conf()
        self._write_hosts()
        self.init = None

    # -- volumes ---------------------------------------------------------------------------
    def _materialise(self, vol):
        path = self.dir / "volumes" / vol["name"]
        path.mkdir(parents=True)
        os.chmod(path.parent, 0o755)
        if "configMap" in vol:
            src = vol["configMap"]
            check("items" not in src, f"volume {vol['name']}: configMap items are not simulated")
            cm = find(self.docs, "ConfigMap", src["name"])
            mode = src.get("defaultMode", 0o644)
            # Kubernetes' atomic-writer layout: the data in a timestamped dir, `..data` pointing
            # at it, and every key a symlink into `..data/`.
            ts = path / k8s_timestamp_dir()
            ts.mkdir()
            for key, value in (cm.get("data") or {}).items():
                f = ts / key
                f.write_text(value)
                if self.fs_group is not None:
                    os.chown(f, 0, self.fs_group)
                os.chmod(f, mode)
            os.chmod(ts, 0o755)
            os.symlink(ts.name, path / "..data")
            for key in cm.get("data") or {}:
                os.symlink(f"..data/{key}", path / key)
            os.chmod(path, 0o755)
            if self.fs_group is not None:
                os.chown(path, 0, self.fs_group)
                os.chmod(path, 0o2755)
        elif "emptyDir" in vol:
            # emptyDir is created 0777; with fsGroup the kubelet makes it group-owned by fsGroup
            # with the setgid bit, so files written in it get that group.
            os.chmod(path, 0o777)
            if self.fs_group is not None:
                os.chown(path, 0, self.fs_group)
                os.chmod(path, 0o2777)
        else:
            # e.g. the data PVC of the main container: a plain directory stands in for it.
            os.chmod(path, 0o755)
        return path

    def emptydir(self, container_path, container):
        """Host path of a container path, through that container's volumeMounts."""
        for m in container.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if container_path == mp or container_path.startswith(mp + "/"):
                base = self.volumes[m["name"]]
                if m.get("subPath"):
                    base = base / m["subPath"]
                return base / container_path[len(mp):].lstrip("/")
        raise Failure(f"{container['name']}: no volumeMount holds {container_path}")

    def _write_resolv_conf(self):
        self.resolv = self.dir / "resolv.conf"
        self.resolv.write_text(
            f"search {self.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
            f"nameserver {self.k.dns.ip}\n"
            "options ndots:5\n"
        )
        os.chmod(self.resolv, 0o644)

    def _write_hosts(self):
        # The kubelet-managed /etc/hosts of a StatefulSet pod (it carries the pod's own FQDN: a
        # resolver that read it would see its own name "resolve" before DNS has it).
        self.hosts = self.dir / "hosts"
        self.hosts.write_text(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.ip}\t{self.fqdn}\t{self.name}\n"
        )
        os.chmod(self.hosts, 0o644)

    # -- env as the kubelet injects it ---------------------------------------------------------
    def field(self, path):
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
            "status.hostIP": "127.0.0.1",
            "spec.nodeName": "e2e-node",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "metadata.uid": self.uid,
        }
        check(path in values, f"fieldRef {path} is not simulated")
        return values[path]

    @staticmethod
    def expand(s, env):
        """Kubernetes' $(VAR) expansion ($$ escapes; unknown references stay as written)."""
        return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                      lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)

    def container_env(self, c):
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": self.name,
        }
        check("envFrom" not in c, f"{c['name']}: envFrom is not simulated")
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = self.expand(str(e["value"]), env)
            else:
                ref = e.get("valueFrom", {}).get("fieldRef")
                check(ref is not None, f"{c['name']}: env {e['name']}: only value and fieldRef are simulated")
                env[e["name"]] = self.field(ref["fieldPath"])
        # Always injected for the API server's Service, even with enableServiceLinks: false.
        env.setdefault("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        env.setdefault("KUBERNETES_SERVICE_PORT", "443")
        return env

    def init_container(self, name="peerconf"):
        found = [c for c in self.spec.get("initContainers", []) if c["name"] == name]
        check(len(found) == 1, f"{self.sts['metadata']['name']}: no init container {name!r}")
        return found[0]

    def main_container(self):
        cs = self.spec["containers"]
        check(len(cs) == 1, "expected one main container")
        return cs[0]

    def ids(self, c):
        csc = c.get("securityContext", {}) or {}
        uid = csc.get("runAsUser", self.psc.get("runAsUser"))
        gid = csc.get("runAsGroup", self.psc.get("runAsGroup", uid))
        groups = [g for g in [self.fs_group] + list(self.psc.get("supplementalGroups", [])) if g is not None]
        return uid, gid, groups

    # -- running the init container -----------------------------------------------------------
    def start_init(self, name="peerconf", override_args=None, env_overrides=None):
        c = self.init_container(name)
        image = c["image"].rsplit(":", 1)[0] if ":" in c["image"].split("/")[-1] else c["image"]
        check(image == PEERCONF_IMAGE, f"init container image {c['image']} is not {PEERCONF_IMAGE}")
        env = self.container_env(c)
        if env_overrides:
            env.update(env_overrides)
        command = c.get("command") or self.k.entrypoint
        args = override_args if override_args is not None else c.get("args", [])
        argv = [self.expand(a, env) for a in list(command) + list(args)]
        uid, gid, groups = self.ids(c)
        csc = c.get("securityContext", {}) or {}
        if csc.get("runAsNonRoot") or self.psc.get("runAsNonRoot"):
            check(uid not in (None, 0), f"{c['name']}: runAsNonRoot but runAsUser is {uid}")
        binds = []
        for m in c.get("volumeMounts", []):
            src = self.volumes[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            binds += ["--bind", src, m["mountPath"], "ro" if m.get("readOnly") else "rw"]
        binds += ["--bind", self.k.binary, self.k.entrypoint[0], "ro"]
        binds += ["--bind", self.resolv, "/etc/resolv.conf", "ro"]
        binds += ["--bind", self.hosts, "/etc/hosts", "ro"]
        rootfs = self.dir / f"rootfs-{name}"
        rootfs.mkdir()
        os.chmod(rootfs, 0o755)
        self.init = Proc(
            f"{self.namespace}.{self.uid}.{name}",
            ["unshare", "--mount", "--uts", "--propagation", "private", "sh", SANDBOX,
             rootfs, self.name, f"{uid}:{gid}", ",".join(map(str, groups)) or "-",
             "true" if csc.get("readOnlyRootFilesystem") else "false", *binds, "--", *argv],
            env=env,
        )
        self.init.pod = self
        return self.init

    def can_read_as_main(self, path):
        """Can the main container's user (runAsUser, runAsGroup, fsGroup) read this file?"""
        uid, gid, groups = self.ids(self.main_container())
        r = run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                 f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
                 "cat", path], check_rc=False)
        return r.returncode == 0


class Kubelet:
    def __init__(self, workdir: Path, binary: Path, repo: Path, net: int):
        self.workdir = workdir
        self.binary = binary
        self.repo = repo
        self.net = net
        self.entrypoint = image_entrypoint(repo)
        self.dns = Dns(workdir, net)
        self.sandbox_selfcheck()

    def sandbox_selfcheck(self):
        """Prove the container emulation before trusting it: the process runs as the given
        uid/gid with the fsGroup as a supplementary group, on a read-only root, with the pod's
        resolv.conf and host name and exactly the env it was given, and the machine's own
        /etc/resolv.conf stays as it was."""
        d = self.workdir / "selfcheck"
        d.mkdir()
        os.chmod(d, 0o755)
        resolv = d / "resolv.conf"
        resolv.write_text(f"nameserver {self.dns.ip}\n")
        os.chmod(resolv, 0o644)

        def sandboxed(n, *argv):
            (d / f"rootfs{n}").mkdir()
            return run(["unshare", "--mount", "--uts", "--propagation", "private", "sh", SANDBOX,
                        d / f"rootfs{n}", "selfcheck-0", "65532:65532", "1000", "true",
                        "--bind", resolv, "/etc/resolv.conf", "ro", "--", *argv],
                       env={"PATH": "/usr/bin:/bin", "POD_NAME": "selfcheck-0"}, check_rc=False)

        script = 'echo "$(id -u):$(id -g):$(id -G)"; if (echo >/probe) 2>/dev/null; then echo rw; else echo ro; fi; ' \
                 'cat /etc/resolv.conf; hostname'
        r = sandboxed(1, "/bin/sh", "-c", script)
        want = f"65532:65532:65532 1000\nro\nnameserver {self.dns.ip}\nselfcheck-0\n"
        check(r.returncode == 0 and r.stdout == want,
              f"the pod sandbox does not behave as a container would: {r.stdout!r} {r.stderr!r}")
        r = sandboxed(2, "/usr/bin/env")
        check(r.returncode == 0 and sorted(r.stdout.splitlines()) == ["PATH=/usr/bin:/bin", "POD_NAME=selfcheck-0"],
              f"the pod sandbox passes an env other than the container's: {r.stdout!r} {r.stderr!r}")
        check(f"nameserver {self.dns.ip}" not in Path("/etc/resolv.conf").read_text(),
              "the machine's /etc/resolv.conf shows the suite's DNS server")

    def ip(self, subnet, host):
        return f"127.{self.net}.{subnet}.{host}"

    def pods(self, docs, namespace, subnet, ordinals, ip_base=11):
        sts = find(docs, "StatefulSet")
        return [Pod(self, docs, sts, i, self.ip(subnet, ip_base + i), namespace) for i in ordinals]


# --------------------------------------------------------------------------------------------
# Assertions shared by the scenarios


def governing_service(docs, sts):
    svc = find(docs, "Service", sts["spec"]["serviceName"])
    check(svc["spec"].get("clusterIP") == "None", f"Service {svc['metadata']['name']} is not headless")
    check(svc["spec"].get("publishNotReadyAddresses") is True,
          f"Service {svc['metadata']['name']}: publishNotReadyAddresses is not true, so no pod record "
          "would exist before the pods are Ready and this suite's publishing would be a lie")
    return svc


def expect_running(pods, why):
    for p in pods:
        check(p.init.running(), f"{p.name}: init exited {p.init.returncode} {why}\n{p.init.tail()}")


def expect_exit0(pods, after, within=NOTICE):
    """Each init exits 0, at or after `after` (a monotonic time) and within `within` s of it."""
    for p in pods:
        rc = p.init.wait(max(0.0, after + within - time.monotonic()))
        check(rc is not None, f"{p.name}: init still running {within}s after its policy was met\n{p.init.tail()}")
        check(rc == 0, f"{p.name}: init exited {rc}\n{p.init.tail()}")
        check(p.init.exited_at >= after, f"{p.name}: init exited before its policy could be met")
        log(f"{p.name}: init exited 0, {p.init.exited_at - after:.2f}s after the record that met its policy")


def no_output(p, path):
    check(not path.exists(), f"{p.name}: {path.name} written while the init was still waiting")


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(".") and n != "..")


# --------------------------------------------------------------------------------------------
# Scenarios


def scenario_consul(k: Kubelet):
    """Consul flow: Parallel start with no records, records one by one, quorum met, files right.

    All 3 pods start at once while DNS has no records; records appear one by one; each init
    exits 0 only once its quorum policy is met, never before; the rendered files are right."""
    docs = kustomize(k.repo / "manifests")
    sts = find(docs, "StatefulSet", "consul")
    governing_service(docs, sts)
    check(sts["spec"].get("podManagementPolicy") == "Parallel", "consul: podManagementPolicy is not Parallel")
    replicas = sts["spec"]["replicas"]
    check(replicas == 3, f"consul: spec.replicas is {replicas}, the scenario expects the shipped 3")
    ns = "e2e-consul"
    pods = k.pods(docs, ns, 1, range(replicas))
    args = pods[0].init_container().get("args", [])
    check("--wait=quorum" in args or ("--wait" in args and args[args.index("--wait") + 1] == "quorum"),
          f"consul init args do not ask for --wait quorum: {args}")
    outputs = [p.emptydir("/config/consul.json", p.init_container()) for p in pods]
    for p in pods:
        rcode, _ = k.dns.resolve(p.fqdn)
        check(rcode == 3, f"{p.fqdn} resolves before the scenario published it")
    mark = k.dns.log_mark()
    for p in pods:  # Parallel: all at once
        p.start_init()
    log(f"started {', '.join(p.name for p in pods)} at once; DNS has none of their names")
    time.sleep(2.0)
    expect_running(pods, "with no record published at all")
    for p, out in zip(pods, outputs, strict=True):
        no_output(p, out)
    asked = {n for _, n in k.dns.queried_names(mark)}
    for p in pods:
        check(p.fqdn in asked, f"{p.name}: its own name was never asked for while waiting")
    log("all 3 still waiting after 2s, nothing written, DNS is being asked")

    # quorum of 3 is 2: a pod needs its own name (with its IP) and one other.
    k.dns.publish(pods[0].fqdn, pods[0].ip)
    log(f"published {pods[0].fqdn} -> {pods[0].ip}")
    time.sleep(2.0)
    expect_running(pods, "with only consul-0's record published (quorum is 2)")
    for p, out in zip(pods, outputs, strict=True):
        no_output(p, out)
    log("consul-0 has itself but no second peer; consul-1/2 lack their own names: all waiting")

    k.dns.publish(pods[1].fqdn, pods[1].ip)
    t1 = time.monotonic()
    log(f"published {pods[1].fqdn} -> {pods[1].ip}")
    expect_exit0(pods[:2], t1)
    time.sleep(max(0.0, t1 + 2.0 - time.monotonic()))
    expect_running(pods[2:], "before its own record existed (quorum counts this pod's own name)")
    no_output(pods[2], outputs[2])
    log("consul-2 still waiting for its own name 2s later")

    k.dns.publish(pods[2].fqdn, pods[2].ip)
    t2 = time.monotonic()
    log(f"published {pods[2].fqdn} -> {pods[2].ip}")
    expect_exit0(pods[2:], t2)

    peers = [p.fqdn for p in pods]
    rendered = []
    for p, out in zip(pods, outputs, strict=True):
        check(out.exists(), f"{p.name}: no {out}")
        try:
            doc = json.loads(out.read_text())
        except ValueError as e:
            raise Failure(f"{p.name}: consul.json is not valid JSON: {e}") from None
        check(doc.get("node_name") == p.name, f"{p.name}: node_name {doc.get('node_name')!r}")
        check(doc.get("bind_addr") == p.ip and doc.get("advertise_addr") == p.ip,
              f"{p.name}: bind/advertise {doc.get('bind_addr')}/{doc.get('advertise_addr')}, pod IP {p.ip}")
        check(doc.get("retry_join") == peers, f"{p.name}: retry_join {doc.get('retry_join')} != {peers}")
        check(doc.get("bootstrap_expect") == 3 and type(doc["bootstrap_expect"]) is int,
              f"{p.name}: bootstrap_expect {doc.get('bootstrap_expect')!r} is not the number 3")
        st = out.stat()
        check(st.st_mode & 0o777 == 0o640, f"{p.name}: mode {oct(st.st_mode & 0o777)}, expected 0640")
        check(p.can_read_as_main(out), f"{p.name}: the consul container's user cannot read {out}")
        check(leftovers(out.parent) == [], f"{p.name}: temp files left in the emptyDir: {leftovers(out.parent)}")
        common = {key: v for key, v in doc.items() if key not in ("node_name", "bind_addr", "advertise_addr")}
        rendered.append(common)
    check(all(r == rendered[0] for r in rendered), "consul.json differs between pods beyond node_name/bind/advertise")
    log("3 valid consul.json: same but node_name/bind_addr/advertise_addr; retry_join = the 3 FQDNs; "
        "bootstrap_expect 3; mode 0640, readable by the consul user via fsGroup")

    # What the inits asked DNS: the peers' absolute names only, despite ndots:5 and the search list.
    asked = k.dns.queried_names(mark)
    strays = sorted({n for _, n in asked if n not in peers})
    check(not strays, f"queries for names other than the peers (search-list expansion?): {strays[:5]}")
    log(f"{len(asked)} DNS queries in all, every one for a peer's absolute name (no search-list expansion)")


def etcd_rewrite(rendered: dict, data_dir: Path):
    """The one deviation from the rendered file, and why: in a pod, 127.0.0.1 is that pod's own
    loopback; here three members share one, so the extra 127.0.0.1 listeners would collide. The
    data dir is the member's volume (mounted at /var/lib/etcd in the manifest)."""
    cfg = dict(rendered)
    for key in ("listen-client-urls", "listen-metrics-urls"):
        urls = [u for u in cfg[key].split(",") if not u.startswith("http://127.0.0.1:")]
        cfg[key] = ",".join(urls)
    cfg["data-dir"] = str(data_dir)
    changed = sorted(key for key in cfg if cfg[key] != rendered.get(key))
    check(set(changed) <= {"listen-client-urls", "listen-metrics-urls", "data-dir"}, f"rewrote {changed}")
    return cfg


def etcd_env():
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ETCDCTL_API": "3"}


def with_resolv(resolv, argv):
    """A host process that resolves through the suite's DNS: its own mount namespace, the pod
    resolv.conf bound over /etc/resolv.conf there (never in the machine's namespace)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv, *argv]


def start_etcd(k, pod, rendered_path, tag):
    main = pod.main_container()
    cmd = list(main.get("command", [])) + list(main.get("args", []))
    check(len(cmd) == 2 and cmd[0].endswith("/etcd") and cmd[1].startswith("--config-file="),
          f"etcd container command is not `etcd --config-file=...`: {cmd}")
    check(pod.emptydir(cmd[1].split("=", 1)[1], main) == rendered_path,
          f"the etcd container reads {cmd[1]}, which is not the file the init wrote")
    check(pod.can_read_as_main(rendered_path), f"{pod.name}: the etcd container's user cannot read the rendered file")
    uid, gid, groups = pod.ids(main)
    data = pod.volumes.get("data") or (pod.dir / "volumes" / "data")
    data.mkdir(parents=True, exist_ok=True)
    member_dir = data / "data"
    os.chown(data, uid, gid)
    cfg = etcd_rewrite(json.loads(rendered_path.read_text()), member_dir)
    cfgfile = pod.dir / f"etcd-{tag}.json"
    cfgfile.write_text(json.dumps(cfg, indent=2))
    os.chmod(cfgfile, 0o644)
    return Proc(
        f"{pod.namespace}.{pod.uid}.etcd-{tag}",
        with_resolv(pod.resolv, ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                                 f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
                                 "etcd", f"--config-file={cfgfile}"]),
        env=etcd_env(),
    )


def etcdctl(pod, *args, timeout=10):
    return run(with_resolv(pod.resolv, ["etcdctl", "--dial-timeout=1s", "--command-timeout=2s", *args]),
               env=etcd_env(), timeout=timeout, check_rc=False)


def scenario_etcd(k: Kubelet):
    """Real etcd: unhealthy without waiting; with --wait=all, a healthy 3-member cluster.

    The contrast first (members started from configs rendered without waiting, before the names
    exist, stay unhealthy), then the example's inits with --wait=all, then a real 3-member
    cluster from the rendered files."""
    docs = kustomize(k.repo / "manifests" / "examples" / "etcd")
    sts = find(docs, "StatefulSet", "etcd")
    governing_service(docs, sts)
    replicas = sts["spec"]["replicas"]
    check(replicas == 3, f"etcd: spec.replicas is {replicas}, expected 3")

    # --- contrast: the same rendered configs, but no waiting (the tutorial's cp+sed world) ---
    cns = "e2e-etcd-nowait"
    cpods = k.pods(docs, cns, 2, range(replicas))
    base_args = cpods[0].init_container().get("args", [])
    check("--wait=all" in base_args, f"etcd init args do not say --wait=all: {base_args}")
    nowait = [a if not a.startswith("--wait=") else "--wait=none" for a in base_args]
    for p in cpods:
        p.start_init(override_args=nowait)
    for p in cpods:
        rc = p.init.wait(10)
        check(rc == 0, f"{p.name}: render with --wait=none exited {rc}\n{p.init.tail()}")
    members = []
    for p in cpods:
        members.append(start_etcd(k, p, p.emptydir("/config/etcd.json", p.init_container()), "nowait"))
    log("contrast: 3 etcd members started from configs rendered WITHOUT waiting; no DNS records exist")
    endpoints = ",".join(f"http://{p.ip}:2379" for p in cpods)
    contrast_start = time.monotonic()
    deadline = contrast_start + 4.0
    probes = 0
    while time.monotonic() < deadline:
        # One etcdctl checks the 3 endpoints concurrently; each answers "is healthy" or "is unhealthy".
        r = etcdctl(cpods[0], f"--endpoints={endpoints}", "--command-timeout=1s", "endpoint", "health")
        probes += 1
        lines = (r.stdout + r.stderr).splitlines()
        check(r.returncode != 0 and not any(" is healthy" in line for line in lines),
              f"contrast: a member reported healthy without its peers' names:\n{r.stdout}{r.stderr}")
        check(sum(" is unhealthy" in line for line in lines) == 3, f"contrast: expected 3 unhealthy: {lines}")
        time.sleep(0.2)
    states = []
    for p, m in zip(cpods, members, strict=True):
        elections = m.stderr().count("starting a new election")
        states.append(f"{p.name} {'running' if m.running() else f'exited {m.returncode}'}, "
                      f"{elections} elections started")
    log(f"contrast: no member healthy for {time.monotonic() - contrast_start:.1f}s "
        f"({probes} rounds of `endpoint health` on all 3, every member unhealthy every time); "
        f"{'; '.join(states)}")
    check(not any("elected leader" in m.stderr() for m in members), "contrast: a leader was elected without DNS")
    for m in members:
        m.stop()

    # --- the example as shipped: --wait=all, records one by one, then real etcd ---------------
    ns = "e2e-etcd"
    pods = k.pods(docs, ns, 0, range(replicas))
    outputs = [p.emptydir("/config/etcd.json", p.init_container()) for p in pods]
    for p in pods:
        p.start_init()
    log("started etcd-0/1/2 inits at once (--wait=all); no records")
    time.sleep(1.5)
    for i, p in enumerate(pods):
        expect_running(pods, f"with {i} of 3 records published (--wait=all needs 3)")
        for q, out in zip(pods, outputs, strict=True):
            no_output(q, out)
        k.dns.publish(p.fqdn, p.ip)
        t = time.monotonic()
        log(f"published {p.fqdn} -> {p.ip}")
        if i < len(pods) - 1:
            time.sleep(1.2)
    expect_exit0(pods, t)

    expected_cluster = ",".join(f"{p.name}=http://{p.fqdn}:2380" for p in pods)
    for p, out in zip(pods, outputs, strict=True):
        cfg = json.loads(out.read_text())
        check(cfg.get("initial-cluster") == expected_cluster,
              f"{p.name}: initial-cluster {cfg.get('initial-cluster')!r} != {expected_cluster!r}")
        check(cfg.get("name") == p.name, f"{p.name}: name {cfg.get('name')!r}")
        check(cfg.get("initial-advertise-peer-urls") == f"http://{p.fqdn}:2380", f"{p.name}: advertise-peer")
        check(cfg.get("listen-peer-urls") == f"http://{p.ip}:2380", f"{p.name}: listen-peer-urls")
    log("rendered etcd.json: one initial-cluster string of 3 FQDN members, listen URLs on each pod IP")

    members = [start_etcd(k, p, out, "cluster") for p, out in zip(pods, outputs, strict=True)]
    started = time.monotonic()
    endpoints = ",".join(f"http://{p.fqdn}:2379" for p in pods)
    while True:
        r = etcdctl(pods[0], f"--endpoints={endpoints}", "endpoint", "health")
        if r.returncode == 0:
            break
        for p, m in zip(pods, members, strict=True):
            check(m.running(), f"{p.name}: etcd exited {m.returncode}\n{m.tail()}")
        check(time.monotonic() - started < 30, f"etcd cluster not healthy after 30s:\n{r.stdout}{r.stderr}")
        time.sleep(0.3)
    # etcdctl 3.4 prints the health lines on stderr.
    healthy = [line for line in (r.stdout + r.stderr).splitlines() if "is healthy" in line]
    check(len(healthy) == 3, f"endpoint health: {r.stdout}{r.stderr}")
    log(f"etcdctl endpoint health: 3/3 healthy via their FQDNs, {time.monotonic() - started:.1f}s after start")

    r = etcdctl(pods[0], f"--endpoints={endpoints}", "member", "list", "-w", "json")
    check(r.returncode == 0, f"member list: {r.stderr}")
    ms = json.loads(r.stdout)["members"]
    got = sorted((m.get("name", ""), tuple(m.get("peerURLs", [])), bool(m.get("clientURLs"))) for m in ms)
    want = sorted((p.name, (f"http://{p.fqdn}:2380",), True) for p in pods)
    check(got == want, f"member list: {got} != {want} (a member without a name has not started)")
    log("etcdctl member list: 3 started members, names and peer URLs as rendered")

    value = f"peerconf-e2e-{random.randint(0, 1 << 30)}"
    r = etcdctl(pods[0], f"--endpoints=http://{pods[0].fqdn}:2379", "put", "/e2e/key", value)
    check(r.returncode == 0 and "OK" in r.stdout, f"put: {r.stdout}{r.stderr}")
    r = etcdctl(pods[2], f"--endpoints=http://{pods[2].fqdn}:2379", "get", "/e2e/key",
                "--print-value-only", "--consistency=l")
    check(r.returncode == 0 and r.stdout.strip() == value, f"get from etcd-2: {r.stdout!r}{r.stderr}")
    log("put through etcd-0, linearizable get through etcd-2: round-trip ok")

    # The manifest's readiness probe, as the kubelet would run it (httpGet to the pod IP).
    main = pods[0].main_container()
    probe = main["readinessProbe"]["httpGet"]
    port = probe["port"]
    if isinstance(port, str):
        port = next(cp["containerPort"] for cp in main["ports"] if cp["name"] == port)
    for p in pods:
        with urllib.request.urlopen(f"http://{p.ip}:{port}{probe['path']}", timeout=3) as resp:
            body = resp.read().decode()
            check(resp.status == 200 and '"health":"true"' in body.replace(" ", ""),
                  f"{p.name}: readiness probe {resp.status} {body}")
    log(f"readiness probe (GET :{port}{probe['path']} on each pod IP): 200 health true")
    for m in members:
        m.stop()


def scenario_stale(k: Kubelet):
    """Pod deleted, new IP: the init waits while DNS serves the old IP, done once it changes.

    A pod is deleted and comes back with a new IP while DNS still serves the old one: its
    init must wait (stale-record guard) and finish once the record changes."""
    docs = kustomize(k.repo / "manifests")
    ns = "e2e-stale"
    pods = k.pods(docs, ns, 3, range(3))
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
    old = pods[1]
    old.start_init()
    check(old.init.wait(NOTICE + 2) == 0, f"{old.name}: first init exited {old.init.returncode}\n{old.init.tail()}")
    log(f"{old.name} ran once with {old.ip}; the pod is deleted, its record still says {old.ip}")

    sts = find(docs, "StatefulSet")
    new = Pod(k, docs, sts, 1, k.ip(3, 22), ns)  # same name, new uid, new IP, fresh emptyDir
    out = new.emptydir("/config/consul.json", new.init_container())
    new.start_init()
    log(f"new {new.name} started with POD_IP {new.ip}")
    time.sleep(3.0)
    expect_running([new], f"while its own name still resolved to the old IP {old.ip}")
    no_output(new, out)
    check(old.ip in new.init.stderr(),
          f"{new.name}: the wait never logged the stale address {old.ip}:\n{new.init.tail()}")
    log(f"still waiting after 3s, nothing written, log names the stale address {old.ip}")
    k.dns.publish(new.fqdn, new.ip)
    t = time.monotonic()
    log(f"record updated: {new.fqdn} -> {new.ip}")
    expect_exit0([new], t)
    doc = json.loads(out.read_text())
    check(doc["bind_addr"] == new.ip and doc["advertise_addr"] == new.ip,
          f"bind/advertise {doc['bind_addr']}/{doc['advertise_addr']}, expected the new IP {new.ip}")
    log(f"consul.json binds and advertises the new IP {new.ip}")


def scenario_scale(k: Kubelet):
    """Scale 3 -> 5 the documented way: new and rolled pods render 5 peers, bootstrap_expect 5.

    manifests/kustomization.yaml: change `count` under `replicas:` (kustomize copies it into
    REPLICAS); then the new pods (and the rolled old ones) render 5 peers."""
    src = k.repo / "manifests"
    docs3 = kustomize(src)
    ns = "e2e-scale"
    pods = k.pods(docs3, ns, 4, range(3))
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
        p.start_init()
    for p in pods:
        check(p.init.wait(NOTICE + 2) == 0, f"{p.name}: init exited {p.init.returncode}\n{p.init.tail()}")
    for p in pods:
        doc = json.loads(p.emptydir("/config/consul.json", p.init_container()).read_text())
        check(doc["bootstrap_expect"] == 3 and len(doc["retry_join"]) == 3, f"{p.name}: not a 3-member config")
    log("3 running pods, each rendered for 3 members")

    # The documented procedure, applied to a copy of the base.
    copy = k.workdir / "manifests-scaled"
    shutil.copytree(src, copy)
    kfile = copy / "kustomization.yaml"
    kust = yaml.safe_load(kfile.read_text())
    entries = [r for r in kust.get("replicas", []) if r.get("name") == "consul"]
    check(len(entries) == 1, "kustomization.yaml has no `replicas:` entry for consul (the documented scale knob)")
    entries[0]["count"] = 5
    kfile.write_text(yaml.safe_dump(kust, sort_keys=False))
    docs5 = kustomize(copy)
    sts5 = find(docs5, "StatefulSet", "consul")
    check(sts5["spec"]["replicas"] == 5, f"spec.replicas is {sts5['spec']['replicas']} after setting count: 5")
    env = {e["name"]: e.get("value") for e in
           next(c for c in sts5["spec"]["template"]["spec"]["initContainers"] if c["name"] == "peerconf")["env"]}
    check(env.get("REPLICAS") == "5", f"REPLICAS is {env.get('REPLICAS')!r} after the documented scale, not \"5\"")
    log("kustomization.yaml `replicas: count: 5` -> spec.replicas 5 and REPLICAS \"5\" together")

    # The trap the kustomization comment warns about: a bare `kubectl scale` keeps REPLICAS=3.
    bare = Pod(k, docs3, find(docs3, "StatefulSet"), 3, k.ip(4, 30), ns)
    bare.start_init()
    rc = bare.init.wait(5)
    check(rc == 2,
          f"consul-3 with the old REPLICAS=3 exited {rc}, expected 2 (ordinal >= replicas)\n{bare.init.tail()}")
    check(not bare.emptydir("/config/consul.json", bare.init_container()).exists(),
          "consul-3 (bare scale) wrote a file")
    log("contrast: a bare `kubectl scale` pod (REPLICAS still 3) fails fast, exit 2, nothing written")

    # Parallel: the StatefulSet controller creates consul-3 and consul-4 at once...
    new = k.pods(docs5, ns, 4, [3, 4])
    for p in new:
        p.start_init()
    time.sleep(1.5)
    expect_running(new, "before its own record existed")
    for p in new:
        k.dns.publish(p.fqdn, p.ip)
        t = time.monotonic()
        log(f"published {p.fqdn} -> {p.ip}")
        expect_exit0([p], t)
    # ...and, the pod template having changed (REPLICAS), rolls consul-2, -1, -0 in turn. A
    # re-created pod gets a new IP, published when it is scheduled.
    rolled = []
    for i in (2, 1, 0):
        p = Pod(k, docs5, sts5, i, k.ip(4, 41 + i), ns)
        k.dns.publish(p.fqdn, p.ip)
        p.start_init()
        check(p.init.wait(NOTICE + 2) == 0, f"rolled {p.name}: init exited {p.init.returncode}\n{p.init.tail()}")
        rolled.append(p)
    log("rolling update: consul-2, -1, -0 re-created with new IPs, inits done")
    peers = [f"consul-{i}.consul.{ns}.svc.{CLUSTER_DOMAIN}" for i in range(5)]
    docs = []
    for p in new + rolled:
        doc = json.loads(p.emptydir("/config/consul.json", p.init_container()).read_text())
        check(doc["bootstrap_expect"] == 5, f"{p.name}: bootstrap_expect {doc['bootstrap_expect']}")
        check(doc["retry_join"] == peers, f"{p.name}: retry_join {doc['retry_join']}")
        check(doc["bind_addr"] == p.ip, f"{p.name}: bind_addr {doc['bind_addr']} != {p.ip}")
        docs.append({key: v for key, v in doc.items() if key not in ("node_name", "bind_addr", "advertise_addr")})
    check(all(d == docs[0] for d in docs), "the 5 configs differ beyond the per-pod fields")
    log("all 5 pods: bootstrap_expect 5, retry_join = the 5 FQDNs")


def scenario_zookeeper(k: Kubelet):
    """ZooKeeper directory mode: zoo.cfg server.N lines and myid for each of 3 pods."""
    docs = kustomize(k.repo / "manifests" / "examples" / "zookeeper")
    sts = find(docs, "StatefulSet", "zookeeper")
    governing_service(docs, sts)
    ns = "e2e-zk"
    pods = k.pods(docs, ns, 5, range(sts["spec"]["replicas"]))
    check(len(pods) == 3, "zookeeper: expected 3 replicas")
    cm_vol = next(m for m in pods[0].init_container()["volumeMounts"] if m["mountPath"] == "/readonly")
    keys = sorted(n for n in os.listdir(pods[0].volumes[cm_vol["name"]]) if not n.startswith("."))
    check(keys == ["myid", "zoo.cfg"], f"ConfigMap keys {keys}")
    for p in pods:
        p.start_init()
    time.sleep(1.0)
    expect_running(pods, "with no records")
    for p in pods:
        k.dns.publish(p.fqdn, p.ip)
    t = time.monotonic()
    log("published the 3 records")
    expect_exit0(pods, t)
    want = [f"server.{i + 1}=zookeeper-{i}.zookeeper.{ns}.svc.{CLUSTER_DOMAIN}:2888:3888;2181" for i in range(3)]
    cfgs = []
    for p in pods:
        out = p.emptydir("/config", p.init_container())
        names = sorted(os.listdir(out))
        check(names == ["myid", "zoo.cfg"], f"{p.name}: emptyDir holds {names}")
        myid = (out / "myid").read_text()
        check(re.fullmatch(r"\d+\n?", myid) and int(myid) == p.ordinal + 1, f"{p.name}: myid {myid!r}")
        cfg = (out / "zoo.cfg").read_text()
        check("{{" not in cfg and "{%" not in cfg, f"{p.name}: template syntax left in zoo.cfg")
        servers = [line.strip() for line in cfg.splitlines() if line.strip().startswith("server.")]
        check(servers == want, f"{p.name}: server lines {servers} != {want}")
        for line in cfg.splitlines():
            s = line.strip()
            check(not s or s.startswith("#") or re.fullmatch(r"[\w.]+=\S.*", s), f"{p.name}: bad zoo.cfg line {line!r}")
        # Where the zookeeper container looks (subPath mounts): both files exist and are readable.
        main = p.main_container()
        for m in main.get("volumeMounts", []):
            if m.get("subPath"):
                f = p.volumes[m["name"]] / m["subPath"]
                check(f.is_file(), f"{p.name}: {m['mountPath']} (subPath {m['subPath']}) has no file")
                check(p.can_read_as_main(f), f"{p.name}: the zookeeper user cannot read {m['subPath']}")
        cfgs.append([line for line in cfg.splitlines() if not line.startswith("#")])
    check(all(c == cfgs[0] for c in cfgs), "zoo.cfg differs between pods beyond comments")
    log("each pod: zoo.cfg with server.1-3 = the 3 FQDNs :2888:3888;2181, myid = ordinal+1, "
        "readable where the zookeeper container mounts them")


SCENARIOS = [
    ("consul-flow", scenario_consul),
    ("etcd-cluster", scenario_etcd),
    ("pod-new-ip", scenario_stale),
    ("scale-3-to-5", scenario_scale),
    ("zookeeper-dir", scenario_zookeeper),
]


# --------------------------------------------------------------------------------------------


def host_mounts_under(path: Path):
    p = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4] == p or line.split()[4].startswith(p + "/")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--repo", type=Path, default=HERE.parent.parent)
    ap.add_argument("scenarios", nargs="*")
    a = ap.parse_args()

    for s in STOP_SIGNALS:
        signal.signal(s, on_stop_signal)

    workdir = a.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    Proc.pidfile = workdir / "pids"
    Proc.logdir = workdir / "logs"
    atexit.register(Proc.stop_all)
    resolv_before = hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest()

    chosen = SCENARIOS
    if a.scenarios:
        unknown = set(a.scenarios) - {n for n, _ in SCENARIOS}
        if unknown:
            print(f"unknown scenario(s): {', '.join(sorted(unknown))}; known: {', '.join(n for n, _ in SCENARIOS)}")
            return 2
        chosen = [(n, f) for n, f in SCENARIOS if n in a.scenarios]

    net = random.randint(100, 250)  # this run's 127.<net>.x.y addresses: concurrent runs don't meet
    passed = failed = 0
    try:
        binary = workdir / "peerconf"
        shutil.copy2(a.bin, binary)  # a private copy: others may rebuild target/ meanwhile
        os.chmod(binary, 0o755)
        k = Kubelet(workdir, binary, a.repo.resolve(), net)
        print(f"e2e: dnsmasq on {k.dns.ip}:53, pods on 127.{net}.x.y, work dir {workdir}", flush=True)
        print("e2e: sandbox self-check ok (uid/gid/fsGroup, read-only root, pod resolv.conf, host name, env)",
              flush=True)
    except Exception as e:  # setup failure: every scenario fails
        print(f"e2e: setup failed: {e}", flush=True)
        traceback.print_exc()
        print(f"e2e: 0 passed, {len(chosen)} failed", flush=True)
        return 1

    for i, (name, fn) in enumerate(chosen, 1):
        print(f"\n== [{i}/{len(chosen)}] {name}: {fn.__doc__.split(chr(10))[0].strip()}", flush=True)
        start = _scenario_t0[0] = time.monotonic()
        first_proc = len(Proc.registry)
        try:
            fn(k)
        except Exception as e:
            failed += 1
            kind = "" if isinstance(e, Failure) else f"{type(e).__name__}: "
            print(f"FAIL  {name} ({time.monotonic() - start:.1f}s): {kind}{e}", flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
        else:
            passed += 1
            print(f"PASS  {name} ({time.monotonic() - start:.1f}s)", flush=True)
        finally:
            for p in Proc.registry[first_proc:]:
                p.stop()

    # Cleanup is part of the contract: nothing left running, nothing mounted, resolv.conf intact.
    k.dns.proc.stop()
    Proc.stop_all()
    problems = []
    alive = [f"{p.name} (pid {p.pid})" for p in Proc.registry if p.running()]
    if alive:
        problems.append(f"still running: {alive}")
    mounts = host_mounts_under(workdir)
    if mounts:
        problems.append(f"mounts left in the machine's namespace: {mounts}")
    if hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest() != resolv_before:
        problems.append("/etc/resolv.conf changed")
    print(flush=True)
    if problems:
        failed += 1
        print(f"FAIL  cleanup: {'; '.join(problems)}", flush=True)
    else:
        killed = [p.name for p in Proc.registry if p.killed]
        how = f"{len(killed)} of them only by SIGKILL: {killed}" if killed else "all ended or stopped by SIGTERM"
        print(f"ok    cleanup: {len(Proc.registry)} processes started and stopped by PID ({how}), "
              "no mount left, /etc/resolv.conf untouched", flush=True)
    print(f"e2e: total {time.monotonic() - T0:.1f}s", flush=True)
    print(f"e2e: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
