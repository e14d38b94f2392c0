"""The one kubelet emulation of the harnesses: a StatefulSet's pod on this machine, as a kubelet
would set it up from the kustomize-built manifests, and its peerconf init container run in a
container-like sandbox (pod-sandbox.sh).

What a Pod gets, as the kubelet gives it:
  - volumes: a ConfigMap in the atomic-writer layout (data in a timestamped `..YYYY_…` dir,
    `..data` pointing at it, each key or item path a symlink into `..data/`; `items`, per-item
    `mode` and `defaultMode` honoured), emptyDir mode 0777, or 02777 group-owned by fsGroup; a
    volumeClaimTemplate's PVC is a directory named `<claim>-<pod>` per namespace that outlives the
    pod (a pod re-created with the same name gets it back; `lose_claim()` deletes it, as a lost
    volume), group-owned by fsGroup with the setgid bit as the kubelet sets it up;
  - network: with a `netns` (harness.netns), the pod's containers run in that network namespace,
    whose eth0 holds the pod IP; without one, the IP is a loopback address of the machine;
  - env: `value` (with `$(VAR)` expansion), `fieldRef` (downward API), `configMapKeyRef`, plus
    PATH, HOSTNAME and the API server's KUBERNETES_SERVICE_* / KUBERNETES_PORT;
  - resolv.conf (the namespace's search list, ndots:5, the node's nameserver) and a /etc/hosts
    that lists the pod's own FQDN;
  - identity: runAsUser (else the image's USER) / runAsGroup, fsGroup and supplementalGroups;
    readOnlyRootFilesystem; the host name set to the pod name;
  - command: the container's command, else the image's ENTRYPOINT, then its args, expanded.
The sandbox binds each volumeMount (subPath, readOnly honoured), the binary at the ENTRYPOINT
path, resolv.conf and hosts into a private tmpfs root. `start_image_container()` runs any other
container of the pod (the datastore itself) the same way, with the local program and host files
that tests/harness/images.py (the one image table) names for its image. Anything the emulation
does not cover (envFrom, service links, other env sources) is a Failure, never silently skipped.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import shutil
from pathlib import Path

from harness import Failure, check, images
from harness.images import PEERCONF_IMAGE
from harness.manifests import Image, find
from harness.proc import Supervisor, run

SANDBOX = Path(__file__).resolve().with_name("pod-sandbox.sh")


def expand(s, env):
    """Kubernetes' $(VAR) expansion ($$ escapes; unknown references stay as written)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


def image_repo(container):
    image = container["image"]
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def setpriv(uid, gid, groups):
    """The argv prefix that runs a host command as uid:gid with these supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]


def with_resolv(resolv, argv):
    """A host process that resolves through the given resolv.conf: its own mount namespace with
    that file bound over /etc/resolv.conf (never in the machine's namespace)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv, *argv]


def sandbox(rootfs, hostname, uid, gid, groups, read_only, root, binds, argv):
    """The argv of one sandboxed container; see pod-sandbox.sh for each argument."""
    return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", SANDBOX, rootfs, hostname,
            f"{uid}:{gid}", ",".join(map(str, groups)) or "-", "true" if read_only else "false", root,
            *binds, "--", *argv]


def mkdir(path, mode=0o755):
    """A new directory with exactly this mode (whatever the umask), for the sandbox's users."""
    path.mkdir()
    os.chmod(path, mode)
    return path


def k8s_timestamp_dir():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{random.randint(0, 999_999_999):09d}"


class Node:
    """This machine as one node: where pods live, who supervises their processes, the peerconf
    image (a binary plus the Dockerfile's ENTRYPOINT and USER), and the cluster DNS.

    root: "host-usr" gives each container the host's /usr read-only (a dynamically linked binary
    needs it; so do the self-check's tools); "scratch" gives it nothing but the binary, as the
    `FROM scratch` image does."""

    def __init__(self, workdir: Path, sup: Supervisor, binary: Path, image: Image, nameserver,
                 domain="cluster.local", root="host-usr"):
        self.workdir = Path(workdir)
        self.sup = sup
        self.binary = binary
        self.image = image
        self.nameserver = nameserver
        self.domain = domain
        self.root = root
        self.pod_seq = 0

    def selfcheck(self):
        """Prove the container emulation before trusting it: the process runs as the given uid/gid
        with the fsGroup as a supplementary group, on a read-only root, with the pod's resolv.conf
        and host name and exactly the env it was given, and the machine's own /etc/resolv.conf
        stays as it was."""
        d = mkdir(self.workdir / "selfcheck")
        resolv = d / "resolv.conf"
        resolv.write_text(f"nameserver {self.nameserver}\n")
        os.chmod(resolv, 0o644)

        def sandboxed(n, *argv):
            (d / f"rootfs{n}").mkdir()
            return run(sandbox(d / f"rootfs{n}", "selfcheck-0", 65532, 65532, [1000], True, "host-usr",
                               ["--bind", resolv, "/etc/resolv.conf", "ro"], argv),
                       env={"PATH": "/usr/bin:/bin", "POD_NAME": "selfcheck-0"}, check_rc=False)

        script = 'echo "$(id -u):$(id -g):$(id -G)"; if (echo >/probe) 2>/dev/null; then echo rw; else echo ro; fi; ' \
                 'cat /etc/resolv.conf; hostname'
        r = sandboxed(1, "/bin/sh", "-c", script)
        want = f"65532:65532:65532 1000\nro\nnameserver {self.nameserver}\nselfcheck-0\n"
        check(r.returncode == 0 and r.stdout == want,
              f"the pod sandbox does not behave as a container would: {r.stdout!r} {r.stderr!r}")
        r = sandboxed(2, "/usr/bin/env")
        check(r.returncode == 0 and sorted(r.stdout.splitlines()) == ["PATH=/usr/bin:/bin", "POD_NAME=selfcheck-0"],
              f"the pod sandbox passes an env other than the container's: {r.stdout!r} {r.stderr!r}")
        check(f"nameserver {self.nameserver}" not in Path("/etc/resolv.conf").read_text(),
              "the machine's /etc/resolv.conf shows the harness's DNS server")


class Pod:
    """One pod of a StatefulSet on the node: ordinal, IP and namespace given, everything else
    from the built manifests (`docs`). A new Pod is a new pod: new uid, fresh volumes."""

    def __init__(self, node: Node, docs, sts, ordinal, ip, namespace, netns=None, fields=None, api_service=None):
        """`fields` overrides downward-API values (a real pod's metadata.uid, spec.nodeName,
        status.hostIP: tests/k8s/agent.py); `api_service` (host, port) is what
        KUBERNETES_SERVICE_HOST/_PORT name instead of the default 10.96.0.1:443."""
        node.pod_seq += 1
        self.fields = dict(fields or {})
        self.api_service = api_service
        check(netns is None or netns.ip == ip, f"pod IP {ip} is not its network namespace's {netns and netns.ip}")
        self.netns = netns
        self.node = node
        self.docs = docs
        self.sts = sts
        self.ordinal = ordinal
        self.ip = ip
        self.namespace = namespace
        self.name = f"{sts['metadata']['name']}-{ordinal}"
        self.fqdn = f"{self.name}.{sts['spec']['serviceName']}.{namespace}.svc.{node.domain}"
        self.spec = sts["spec"]["template"]["spec"]
        self.psc = self.spec.get("securityContext") or {}
        self.fs_group = self.psc.get("fsGroup")
        self.uid = f"{self.name}-{node.pod_seq}"
        self.dir = node.workdir / "pods" / namespace / self.uid
        self.dir.mkdir(parents=True)
        os.chmod(self.dir.parent, 0o755)
        os.chmod(self.dir, 0o755)
        mkdir(self.dir / "volumes")
        self.volumes = {v["name"]: self._materialise(v) for v in self.spec.get("volumes", [])}
        self.claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
        self.resolv = self._write("resolv.conf", f"search {namespace}.svc.{node.domain} svc.{node.domain} {node.domain}\n"
                                                 f"nameserver {node.nameserver}\noptions ndots:5\n")
        # The kubelet-managed /etc/hosts of a StatefulSet pod carries the pod's own FQDN: a
        # resolver that read it would see its own name "resolve" before DNS has it.
        self.hosts = self._write("hosts", "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                                          "::1\tlocalhost ip6-localhost ip6-loopback\n"
                                          f"{ip}\t{self.fqdn}\t{self.name}\n")
        self.init = None
        self.starts = 0
        self.procs = []  # every container process started for this pod, in order

    def _write(self, name, text):
        path = self.dir / name
        path.write_text(text)
        os.chmod(path, 0o644)
        return path

    # -- volumes -------------------------------------------------------------------------------
    def _materialise(self, vol):
        if "persistentVolumeClaim" in vol:
            # A real pod's PVC (tests/k8s: the StatefulSet controller names it `<claim>-<pod>`):
            # the same per-namespace directory that volume() gives a volumeClaimTemplate.
            return self._claim_dir(self.node.workdir / "pvc" / self.namespace / vol["persistentVolumeClaim"]["claimName"])
        path = self.dir / "volumes" / vol["name"]
        path.mkdir()
        if "configMap" in vol:
            self._config_map(path, vol["configMap"])
        elif "emptyDir" in vol:
            # emptyDir is created 0777; with fsGroup the kubelet makes it group-owned by fsGroup
            # with the setgid bit, so files written in it get that group.
            self._group_owned(path, 0o777)
        else:
            os.chmod(path, 0o755)
        return path

    def _group_owned(self, path, mode):
        os.chmod(path, mode)
        if self.fs_group is not None:
            os.chown(path, 0, self.fs_group)
            os.chmod(path, mode | 0o2000)

    def _config_map(self, path, src):
        data = find(self.docs, "ConfigMap", src["name"]).get("data") or {}
        items = src.get("items") or [{"key": key, "path": key} for key in data]
        ts = path / k8s_timestamp_dir()
        ts.mkdir()
        for it in items:
            check(it["key"] in data, f"ConfigMap {src['name']} has no key {it['key']!r}")
            f = ts / it["path"]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(data[it["key"]])
            if self.fs_group is not None:
                os.chown(f, 0, self.fs_group)
            os.chmod(f, it.get("mode", src.get("defaultMode", 0o644)))
        for d, _, _ in os.walk(ts):
            os.chmod(d, 0o755)
        os.symlink(ts.name, path / "..data")
        for top in dict.fromkeys(it["path"].split("/")[0] for it in items):
            os.symlink(f"..data/{top}", path / top)
        self._group_owned(path, 0o755)

    def host_path(self, container_path, container=None):
        """Where a path of a container (default: the peerconf init) is on this machine, through
        that container's volumeMounts."""
        container = container or self.init_container()
        for m in container.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if container_path == mp or container_path.startswith(mp + "/"):
                base = self.volume(m["name"])
                if m.get("subPath"):
                    base = base / m["subPath"]
                return base / container_path[len(mp):].lstrip("/")
        raise Failure(f"{container['name']}: no volumeMount holds {container_path}")

    def claim_path(self, name):
        """Where the PVC `<claim>-<pod>` of this pod lives: per namespace, not per pod instance."""
        return self.node.workdir / "pvc" / self.namespace / f"{name}-{self.name}"

    def volume(self, name):
        """A volume's directory. A volumeClaimTemplate's PVC is created on first use and kept for
        the next pod of the same name; any other unknown name is a plain directory."""
        if name not in self.volumes:
            if name in self.claims:
                self.volumes[name] = self._claim_dir(self.claim_path(name))
            else:
                self.volumes[name] = mkdir(self.dir / "volumes" / name)
        return self.volumes[name]

    def _claim_dir(self, path):
        """A PVC's directory, created (group-owned by fsGroup, setgid) on first use only."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent.parent, 0o755)
            os.chmod(path.parent, 0o755)
            path.mkdir()
            self._group_owned(path, 0o775)
        return path

    def lose_claim(self, name):
        """The PVC is gone (node lost with a local volume, or deleted): the next pod of this name
        starts with an empty one. Its processes must have been stopped."""
        shutil.rmtree(self.claim_path(name))
        self.volumes.pop(name, None)

    # -- containers ----------------------------------------------------------------------------
    def init_container(self):
        """The pod's one init container of the peerconf image."""
        found = [c for c in self.spec.get("initContainers", []) if image_repo(c) == PEERCONF_IMAGE]
        check(len(found) == 1, f"{self.sts['metadata']['name']}: expected one {PEERCONF_IMAGE} init container, "
                               f"found {len(found)}")
        return found[0]

    def main_container(self, name=None):
        cs = self.spec["containers"]
        if name is not None:
            found = [c for c in cs if c["name"] == name]
            check(len(found) == 1, f"{self.name}: no container named {name}")
            return found[0]
        check(len(cs) == 1, "expected one main container")
        return cs[0]

    def field(self, path):
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
            "status.hostIP": "127.0.0.1",
            "spec.nodeName": "harness-node",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
        }
        values.update(self.fields)
        check(path in values, f"fieldRef {path} is not simulated")
        return values[path]

    def container_env(self, c):
        check(self.spec.get("enableServiceLinks") is False,
              f"{self.name}: enableServiceLinks is not false; service links are not simulated")
        check("envFrom" not in c, f"{c['name']}: envFrom is not simulated")
        # The API server's Service is always injected, even with enableServiceLinks: false.
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        }
        if self.api_service is not None:
            host, port = self.api_service
            env.update(KUBERNETES_SERVICE_HOST=str(host), KUBERNETES_SERVICE_PORT=str(port),
                       KUBERNETES_SERVICE_PORT_HTTPS=str(port), KUBERNETES_PORT=f"tcp://{host}:{port}")
        for e in c.get("env", []):
            src = e.get("valueFrom", {})
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
            elif "fieldRef" in src:
                env[e["name"]] = self.field(src["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                data = find(self.docs, "ConfigMap", ref["name"]).get("data") or {}
                check(ref["key"] in data, f"{c['name']}: env {e['name']}: ConfigMap {ref['name']} has no {ref['key']!r}")
                env[e["name"]] = data[ref["key"]]
            else:
                raise Failure(f"{c['name']}: env {e['name']}: {src} is not simulated")
        return env

    def container_argv(self, c, env, args=None):
        """command (else the image's ENTRYPOINT) + args (or the given ones), $(VAR)-expanded."""
        command = c.get("command") or self.node.image.entrypoint
        args = c.get("args", []) if args is None else args
        return [expand(a, env) for a in list(command) + list(args)]

    def ids(self, c):
        """(uid, gid, supplementary groups) a container runs as; uid None if nothing says."""
        csc = c.get("securityContext") or {}
        default = self.node.image.uid if image_repo(c) == PEERCONF_IMAGE else None
        uid = csc.get("runAsUser", self.psc.get("runAsUser", default))
        gid = csc.get("runAsGroup", self.psc.get("runAsGroup", uid))
        groups = [g for g in [self.fs_group, *self.psc.get("supplementalGroups", [])] if g is not None]
        return uid, gid, groups

    def start_init(self, args=None):
        """Start the peerconf init container (with other args if given); it is also `self.init`."""
        c = self.init_container()
        env = self.container_env(c)
        argv = self.container_argv(c, env, args)
        prog = images.peerconf(self.node.binary, self.node.image)
        self.init = self._start(c, env, argv, [("--bind", host, path, "ro") for host, path in prog.files],
                                self.node.root)
        return self.init

    def start_image_container(self, c, argv=None):
        """start_container() with what tests/harness/images.py says the container's image runs:
        `argv` (default: the manifest's command + args, else the image's default command) with
        argv[0] mapped to the local program, the image's files bound, the image's env."""
        prog = images.program_for(image_repo(c))
        if argv is None:
            has_command = c.get("command") or c.get("args")
            argv = self.container_argv(c, {**prog.env, **self.container_env(c)}) if has_command else []
        return self.start_container(c, argv=prog.argv(list(argv)), files=prog.bound_files(self.node.workdir),
                                    env=prog.env)

    def start_container(self, c, argv=None, files=(), env=None):
        """Start another container of the pod (the datastore) in the same kind of sandbox, on the
        host's /usr: `argv` (default: its command + args, $(VAR)-expanded; give the image's
        default command for a container that has none), `files` [(host path, container path)]
        bound read-only where the image would hold them (a binary, /etc/java-...), `env` added
        to the container's env (what the image's ENV sets)."""
        cenv = {**(env or {}), **self.container_env(c)}
        if argv is None:
            check(c.get("command") or c.get("args"), f"{c['name']}: no command in the manifest; give the image's")
            argv = self.container_argv(c, cenv)
        binds = [("--bind", host, path, "ro") for host, path in files]
        return self._start(c, cenv, [expand(a, cenv) for a in argv], binds, "host-usr")

    def _start(self, c, env, argv, extra_binds, root):
        uid, gid, groups = self.ids(c)
        check(uid is not None, f"{c['name']}: no runAsUser; cannot tell whom it would run as")
        csc = c.get("securityContext") or {}
        if csc.get("runAsNonRoot") or self.psc.get("runAsNonRoot"):
            check(uid not in (None, 0), f"{c['name']}: runAsNonRoot but runAsUser is {uid}")
        binds = []
        for m in c.get("volumeMounts", []):
            src = self.volume(m["name"])
            if m.get("subPath"):
                src = src / m["subPath"]
            binds += ["--bind", src, m["mountPath"], "ro" if m.get("readOnly") else "rw"]
        for b in extra_binds:
            binds += list(b)
        binds += ["--bind", self.resolv, "/etc/resolv.conf", "ro"]
        binds += ["--bind", self.hosts, "/etc/hosts", "ro"]
        self.starts += 1
        rootfs = mkdir(self.dir / f"rootfs-{c['name']}-{self.starts}")
        proc = self.node.sup.start(
            f"{self.namespace}.{self.uid}.{c['name']}",
            [*(self.netns.exec_prefix() if self.netns else []),
             *sandbox(rootfs, self.name, uid, gid, groups, csc.get("readOnlyRootFilesystem"), root, binds, argv)],
            env=env,
        )
        self.procs.append(proc)
        return proc

    def stop(self, grace=5.0):
        """Stop every process of the pod (SIGTERM, then SIGKILL after `grace` s), by PID."""
        for p in self.procs:
            p.signal(15)
        for p in self.procs:
            if p.wait(grace) is None:
                p.kill()

    def can_read(self, path, container=None):
        """Can a container's user (default: the main container's; uid, gid, groups) read this file?"""
        uid, gid, groups = self.ids(container or self.main_container())
        check(uid is not None, f"{self.name}: no runAsUser; cannot tell what the container can read")
        return run([*setpriv(uid, gid, groups), "cat", path], check_rc=False).returncode == 0
