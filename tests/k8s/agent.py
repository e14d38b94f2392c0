"""The node agent: the one emulated part of tests/k8s, in place of the kubelet.

It talks to the real API server (REST, admin client certificate) and:
  - registers Node `node-1` (Ready, allocatable 16 CPUs / 64Gi / 110 pods) and renews its Lease
    in kube-node-lease every 5 s, so the node-lifecycle controller keeps it Ready;
  - plays a local-path provisioner: a default StorageClass `local-dir`, and for each Pending PVC
    of that class a PersistentVolume (hostPath, Retain) pre-bound to it, in the directory the pod
    sandbox mounts (`<workdir>/pvc/<namespace>/<claim>`); the real PV controller binds them;
  - polls the pods the real scheduler bound to it (every 0.3 s) and runs each one with the shared
    kubelet emulation (tests/harness/pods.py, pod-sandbox.sh): a network namespace and IP on the
    bridge (tests/harness/netns.py), `status.podIP`/`podIPs` set BEFORE the init containers run
    (after an optional injected delay), ConfigMap volumes in the `..data` layout from the real
    ConfigMap objects, emptyDirs, PVCs, downward-API and configMapKeyRef env, init containers
    in order (restarted on failure with the kubelet's back-off: at once, then 10 s, 20 s, ...
    300 s), then the main containers, readiness and liveness probes (exec, tcpSocket, httpGet)
    reported as pod conditions and container statuses; a liveness probe that fails
    failureThreshold times in a row kills the container (preStop hook, SIGTERM, SIGKILL after the
    probe's terminationGracePeriodSeconds, else the pod's) and restarts it in place
    (restartCount + 1, lastState.terminated with the runtime's exit code, 128 + signal for a
    killed process); graceful deletion (preStop exec hooks, SIGTERM, SIGKILL after the grace
    period, then the final delete with grace 0).
  - ConfigMap volumes updated in place while the pod runs (every CONFIGMAP_SYNC_S): the kubelet
    AtomicWriter's steps (new timestamped dir, `..data_tmp` symlink renamed over `..data`, new
    keys linked, removed keys unlinked, old dir removed). The rendered config, written once by
    the init container, does not change until the pod is re-created (as in a real cluster).
  - Secret volumes from the real Secret objects, and projected volumes with `serviceAccountToken`
    (a token for the pod's ServiceAccount from the TokenRequest API, with the audience and
    expirationSeconds asked, bound to the pod by name and uid), `configMap` (e.g. the
    `kube-root-ca.crt` the controller-manager's root-ca-cert-publisher keeps in every namespace),
    `secret` and `downwardAPI` (fieldRef) sources, in the same `..data` layout with `mode` /
    `defaultMode` honoured (the kubelet's default 0644) and group-owned by fsGroup.
Images map to local programs through the one table, tests/harness/images.py.

Not done (a pod that needs one fails with a message saying so): envFrom; Secret and projected
volumes updated in place (only configMap volumes are), so a projected token is not refreshed
before it expires (the kubelet rotates it at 80 % of its life; no scenario runs a pod longer than
the 10 minutes the shipped patch asks for); startup probes.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import quote

from harness import Failure, images
from harness.pods import PEERCONF_IMAGE, Node, Pod, image_repo, k8s_timestamp_dir
from harness.proc import run

NODE = "node-1"
STORAGE_CLASS = "local-dir"
# How often a running pod's ConfigMap volumes are compared with their ConfigMaps. The kubelet
# does it on its periodic pod sync (1 min) through a cache (TTL 1 min by default), so a change
# shows up within about 1-2 minutes; the agent checks every 2 s to keep the suite short.
CONFIGMAP_SYNC_S = 2.0


def backoff(restarts):
    """The kubelet's container restart back-off (kuberuntime doBackOff): the first restart of a
    container that exited is not delayed, the next ones wait 10 s, 20 s, 40 s... up to 300 s."""
    return 0 if restarts <= 1 else min(10 * 2 ** (restarts - 2), 300)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Agent:
    def __init__(self, cp, sup, workdir: Path, binary, image, log=print):
        self.cp = cp
        self.api = cp.api
        self.sup = sup
        self.workdir = Path(workdir)
        self.node = Node(self.workdir, sup, binary, image, cp.dns_ip)
        self.log_lines = []  # everything the agent logged, for figures (preStop results...)
        self._log = log
        self.runners: dict[str, PodRunner] = {}  # pod uid -> runner
        self.lock = threading.Lock()
        self.net_lock = threading.Lock()
        self.stopping = threading.Event()
        self.next_host = 0
        # pod name -> seconds before the pod starts at all (IP, sandbox, containers); to delay
        # only the record, see healthy.py's DelayedRecordRunner (status.podIP withheld).
        self.ip_delay = {}
        self.errors = []
        self.events = []  # (monotonic, text), for figures

    def log(self, msg):
        self.log_lines.append(msg)
        self._log(msg)

    # -- addresses ------------------------------------------------------------------------------
    def new_ip(self):
        """A pod IP never used before in this run: a re-created pod always gets a new one."""
        with self.lock:
            n = self.next_host
            self.next_host += 1
        return self.cp.network.ip(1 + n // 200, 11 + n % 200)

    # -- node -----------------------------------------------------------------------------------
    def register(self):
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                                      "kubernetes.io/arch": "amd64"}}}
        if self.api.maybe_get(f"/api/v1/nodes/{NODE}") is None:
            self.api.post("/api/v1/nodes", node)
        self._node_status()
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": NODE, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": now_micro()}}
        self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease, ok=(201, 409))
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": STORAGE_CLASS,
                           "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
              "provisioner": "peerconf.test/local-dir", "reclaimPolicy": "Retain",
              "volumeBindingMode": "Immediate"}
        self.api.post("/apis/storage.k8s.io/v1/storageclasses", sc, ok=(201, 409))
        for target in (self._heartbeat, self._loop):
            threading.Thread(target=self._guard(target), daemon=True).start()

    def _node_status(self):
        cap = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        t = now()
        conds = [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "peerconf test agent",
                  "lastHeartbeatTime": t, "lastTransitionTime": t}]
        for typ in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            conds.append({"type": typ, "status": "False", "reason": "KubeletHasNo" + typ,
                          "lastHeartbeatTime": t, "lastTransitionTime": t})
        self.api.patch(f"/api/v1/nodes/{NODE}/status", {"status": {
            "capacity": cap, "allocatable": cap, "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": self.cp.network.node.ip}, {"type": "Hostname", "address": NODE}],
            "nodeInfo": {"kubeletVersion": "peerconf-test-agent", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "pod-sandbox.sh", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                         "machineID": "", "systemUUID": "", "bootID": ""}}})

    def _guard(self, fn):
        def wrapped():
            try:
                fn()
            except Exception:  # noqa: BLE001 - recorded, the suite fails on it
                if not self.stopping.is_set():
                    self.errors.append(traceback.format_exc())
        return wrapped

    def _heartbeat(self):
        n = 0
        while not self.stopping.wait(5):
            try:
                self.api.patch(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}",
                               {"spec": {"renewTime": now_micro(), "holderIdentity": NODE}})
                n += 1
                if n % 6 == 0:
                    self._node_status()
            except (OSError, Failure) as e:
                if not self.stopping.is_set():
                    self.log(f"agent: heartbeat failed: {e}")

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self):
        failing = False
        while not self.stopping.wait(0.3):
            try:
                self._provision()
                pods = self.api.get(f"/api/v1/pods?fieldSelector={quote('spec.nodeName=' + NODE)}")["items"]
            except (OSError, Failure) as e:
                if not failing:  # once per outage (replicas-auto stops the API server on purpose)
                    self.log(f"agent: list failed: {e}; retrying every 0.3 s")
                failing = True
                continue
            if failing:
                self.log("agent: the API server answers again")
            failing = False
            seen = set()
            for p in pods:
                uid = p["metadata"]["uid"]
                seen.add(uid)
                r = self.runners.get(uid)
                if r is None and not p["metadata"].get("deletionTimestamp"):
                    r = self.runners[uid] = PodRunner(self, p)
                    r.start()
                elif r is None:  # deleting a pod we never ran: nothing to stop
                    self.api.delete(self._pod_path(p) + "", {"gracePeriodSeconds": 0,
                                                            "preconditions": {"uid": uid}})
                if r is not None and p["metadata"].get("deletionTimestamp"):
                    r.request_stop(p["metadata"].get("deletionGracePeriodSeconds", 30))
            for uid, r in list(self.runners.items()):
                if uid not in seen and r.done.is_set():
                    del self.runners[uid]
                elif uid not in seen:
                    r.request_stop(0)  # force-deleted: stop at once

    @staticmethod
    def _pod_path(p):
        return f"/api/v1/namespaces/{p['metadata']['namespace']}/pods/{p['metadata']['name']}"

    def _provision(self):
        for c in self.api.get("/api/v1/persistentvolumeclaims")["items"]:
            if c["status"].get("phase") != "Pending" or c["spec"].get("volumeName") \
                    or c["spec"].get("storageClassName") != STORAGE_CLASS:
                continue
            ns, name = c["metadata"]["namespace"], c["metadata"]["name"]
            path = self.workdir / "pvc" / ns / name
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": f"pv-{c['metadata']['uid']}", "labels": {"peerconf.test/claim": name}},
                  "spec": {"capacity": {"storage": c["spec"]["resources"]["requests"]["storage"]},
                           "accessModes": c["spec"]["accessModes"], "persistentVolumeReclaimPolicy": "Retain",
                           "storageClassName": STORAGE_CLASS, "hostPath": {"path": str(path)},
                           "claimRef": {"namespace": ns, "name": name, "uid": c["metadata"]["uid"],
                                        "kind": "PersistentVolumeClaim", "apiVersion": "v1"}}}
            self.api.post("/api/v1/persistentvolumes", pv, ok=(201, 409))

    def stop(self):
        self.stopping.set()
        for r in list(self.runners.values()):
            r.request_stop(2)
        for r in list(self.runners.values()):
            r.done.wait(15)
        for r in list(self.runners.values()):
            r.teardown()


class PodRunner(threading.Thread):
    """One pod's life on the node, in a thread of its own."""

    def __init__(self, agent: Agent, obj):
        super().__init__(daemon=True)
        self.agent, self.api, self.obj = agent, agent.api, obj
        self.meta, self.spec = obj["metadata"], obj["spec"]
        self.ns, self.name, self.uid = self.meta["namespace"], self.meta["name"], self.meta["uid"]
        self.path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}"
        self.stop_grace = None
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.pod: Pod | None = None
        self.netns = None
        self.ip = None
        self.init_status = {}
        self.main_status = {}
        self.main_procs = {}
        self.ready = {}
        self.phase = "Pending"
        self.initialized = False
        self.started_at = now()
        self.t_ip = None
        self.t_init_done = None
        self.t_ready = None
        self.probes = {}  # container name -> Prober, once the main containers run
        self.status_pending = False  # the last status patch failed to reach the API server
        self.cm_unread = set()  # configMap volumes whose ConfigMap could not be read at the last sync
        self.configmap_swaps = []  # (monotonic, volume, old dir, new dir) of each in-place update
        self.created_mono = time.monotonic()

    def log(self, msg):
        self.agent.log(f"agent: {self.ns}/{self.name}: {msg}")

    def request_stop(self, grace):
        if self.stop_grace is None:
            self.stop_grace = grace
            self.stop_event.set()

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001
            if not self.stop_event.is_set():
                self.agent.errors.append(f"{self.ns}/{self.name}: {traceback.format_exc()}")
                self.log(f"failed: {e}")
                try:
                    self._status(reason=str(e)[:500])
                except Exception:  # noqa: BLE001
                    pass
        finally:
            try:
                self._terminate()
            finally:
                self.done.set()

    # -- status -------------------------------------------------------------------------------
    def _cond(self, typ, ok, t):
        return {"type": typ, "status": "True" if ok else "False", "lastTransitionTime": t, "lastProbeTime": None}

    def _status(self, reason=None):
        t = now()
        all_ready = bool(self.main_status) and all(self.ready.get(c["name"]) for c in self.spec["containers"])
        status = {
            "phase": self.phase, "hostIP": self.agent.cp.network.node.ip,
            "hostIPs": [{"ip": self.agent.cp.network.node.ip}], "startTime": self.started_at,
            "conditions": [self._cond("PodReadyToStartContainers", self.ip is not None, t),
                           self._cond("Initialized", self.initialized, t),
                           self._cond("ContainersReady", all_ready, t),
                           self._cond("Ready", all_ready, t),
                           self._cond("PodScheduled", True, t)],
            "initContainerStatuses": [self.init_status.get(c["name"], self._waiting(c, "PodInitializing"))
                                      for c in self.spec.get("initContainers", [])],
            "containerStatuses": [dict(self.main_status.get(c["name"], self._waiting(c, "PodInitializing")),
                                       ready=bool(self.ready.get(c["name"])))
                                  for c in self.spec["containers"]],
        }
        if self.ip is not None:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if reason:
            status["message"] = reason
        try:
            self.api.patch(self.path + "/status", {"metadata": {"uid": self.uid}, "status": status})
        except OSError as e:
            # The API server is unreachable (replicas-auto stops it on purpose): like the kubelet,
            # keep the containers running and report the latest status once it answers again.
            if not self.status_pending:
                self.log(f"status not reported ({e}); retrying while the pod runs")
            self.status_pending = True
            return
        if self.status_pending:
            self.log("status reported again")
        self.status_pending = False

    @staticmethod
    def _waiting(c, reason, restarts=0, last=None):
        s = {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": restarts,
             "started": False, "state": {"waiting": {"reason": reason}}}
        if last:
            s["lastState"] = last
        return s

    @staticmethod
    def _running(c, proc, restarts=0, last=None):
        s = {"name": c["name"], "image": c["image"], "imageID": "", "containerID": f"pod-sandbox://{proc.pid}",
             "ready": False, "restartCount": restarts, "started": True, "state": {"running": {"startedAt": now()}}}
        if last:
            s["lastState"] = last
        return s

    @staticmethod
    def _terminated(proc):
        # A container runtime reports a process killed by signal N as exit code 128 + N.
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                               "finishedAt": now(), "containerID": f"pod-sandbox://{proc.pid}"}}

    # -- the pod --------------------------------------------------------------------------------
    def _configmaps(self):
        names = {v["configMap"]["name"] for v in self.spec.get("volumes", []) if "configMap" in v}
        # kube-root-ca.crt and friends in projected volumes are filled by _projected, not here.
        for c in self.spec.get("initContainers", []) + self.spec["containers"]:
            if "envFrom" in c:
                raise Failure(f"{c['name']}: envFrom is not done by the test agent")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    names.add(ref["name"])
        docs = []
        for n in sorted(names):
            cm = self.api.maybe_get(f"/api/v1/namespaces/{self.ns}/configmaps/{n}")
            if cm is None:
                raise Failure(f"ConfigMap {n} does not exist")
            docs.append(cm)
        return docs

    def _harness_pod(self):
        for v in self.spec.get("volumes", []):
            kinds = set(v) - {"name"}
            if not kinds <= {"configMap", "emptyDir", "persistentVolumeClaim", "projected", "secret"}:
                raise Failure(f"volume {v['name']}: {sorted(kinds)} is not done by the test agent")
        sts_name, _, ordinal = self.name.rpartition("-")
        if not ordinal.isdigit() or not self.spec.get("subdomain"):
            raise Failure("not a StatefulSet pod (the test agent runs only those)")
        sts_like = {"metadata": {"name": sts_name},
                    "spec": {"serviceName": self.spec["subdomain"], "template": {"spec": self.spec}}}
        fields = {"metadata.uid": self.uid, "spec.nodeName": NODE, "status.hostIP": self.agent.cp.network.node.ip,
                  "status.podIPs": self.ip, "status.podIP": self.ip}
        pod = Pod(self.agent.node, self._configmaps(), sts_like, int(ordinal), self.ip, self.ns, netns=self.netns,
                  fields=fields, api_service=(self.agent.cp.api_ip, self.agent.cp.API_PORT))
        # harness.pods left these volumes as empty 0755 directories: fill them as the kubelet does.
        for v in self.spec.get("volumes", []):
            if "projected" in v:
                self._atomic_dir(pod, pod.volumes[v["name"]], self._projected(pod, v["projected"]),
                                 v["projected"].get("defaultMode", 0o644))
            elif "secret" in v:
                src = v["secret"]
                self._atomic_dir(pod, pod.volumes[v["name"]], self._keyed("secrets", src), src.get("defaultMode", 0o644))
        return pod

    # -- Secret and projected volumes ---------------------------------------------------------
    def _object(self, kind, name, optional=False):
        obj = self.api.maybe_get(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
        if obj is None and not optional:
            raise Failure(f"{kind[:-1]} {name} does not exist")
        return obj

    def _keyed(self, kind, src):
        """[(path, bytes, mode or None)] of a configMap or secret source (volume or projection)."""
        obj = self._object(kind, src["name"], src.get("optional", False)) or {}
        if kind == "secrets":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = src.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        out = []
        for it in items:
            if it["key"] not in data:
                raise Failure(f"{kind[:-1]} {src['name']} has no key {it['key']!r}")
            out.append((it["path"], data[it["key"]], it.get("mode")))
        return out

    def _projected(self, pod, proj):
        files = []
        for src in proj.get("sources", []):
            if "serviceAccountToken" in src:
                t = src["serviceAccountToken"]
                sa = self.spec.get("serviceAccountName") or "default"
                spec = {"expirationSeconds": t.get("expirationSeconds", 3600),
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}
                if t.get("audience"):
                    spec["audiences"] = [t["audience"]]
                tr = self.api.post(f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
                files.append((t["path"], tr["status"]["token"].encode(), None))
                self.log(f"token for ServiceAccount {sa} (expires {tr['status']['expirationTimestamp']})")
            elif "configMap" in src:
                files += self._keyed("configmaps", src["configMap"])
            elif "secret" in src:
                files += self._keyed("secrets", src["secret"])
            elif "downwardAPI" in src:
                for it in src["downwardAPI"]["items"]:
                    if "fieldRef" not in it:
                        raise Failure(f"downwardAPI item {it['path']}: only fieldRef is done by the test agent")
                    files.append((it["path"], str(pod.field(it["fieldRef"]["fieldPath"])).encode(), it.get("mode")))
            else:
                raise Failure(f"projected source {sorted(src)} is not done by the test agent")
        return files

    @classmethod
    def _atomic_dir(cls, pod, path, files, default_mode):
        """The kubelet's atomic-writer layout: files in a timestamped directory, `..data` -> it,
        one symlink per top-level name; files group-owned by fsGroup when the pod has one."""
        ts = cls._write_ts_dir(pod, path, files, default_mode)
        os.symlink(ts.name, path / "..data")
        for top in dict.fromkeys(rel.split("/")[0] for rel, _, _ in files):
            os.symlink(f"..data/{top}", path / top)

    @staticmethod
    def _write_ts_dir(pod, path, files, default_mode):
        """One payload in a new timestamped directory of the volume (not yet linked)."""
        ts = path / k8s_timestamp_dir()
        ts.mkdir()
        for rel, data, mode in files:
            f = ts / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
            if pod.fs_group is not None:
                os.chown(f, 0, pod.fs_group)
            os.chmod(f, default_mode if mode is None else mode)
        for d, _, _ in os.walk(ts):
            os.chmod(d, 0o755)
        return ts

    def _start(self, c):
        repo = image_repo(c)
        if repo == PEERCONF_IMAGE:
            return self.pod.start_init() if c in self.spec.get("initContainers", []) else \
                self._fail(f"{c['name']}: peerconf as a main container is not run by the test agent")
        return self.pod.start_image_container(c)

    def _fail(self, msg):
        raise Failure(msg)

    def _run(self):
        delay = self.agent.ip_delay.get(self.name, 0)
        if delay and self.stop_event.wait(delay):
            return
        self.ip = self.agent.new_ip()
        with self.agent.net_lock:  # harness.netns.Network is not thread-safe
            self.netns = self.agent.cp.network.add_pod(self.ip)
        # Set before any container runs, as the kubelet does: the EndpointSlice controller can
        # publish the pod (with publishNotReadyAddresses) while its init containers wait.
        self._status()
        self.t_ip = time.monotonic()
        self.log(f"IP {self.ip}")
        self.pod = self._harness_pod()
        for c in self.spec.get("initContainers", []):
            restarts, last = 0, None
            while True:
                proc = self._start(c)
                self.init_status[c["name"]] = self._running(c, proc, restarts, last)
                self._status()
                while proc.wait(0.2) is None:
                    if self.stop_event.is_set():
                        return
                term = self._terminated(proc)
                if proc.returncode == 0:
                    self.init_status[c["name"]] = dict(self._waiting(c, ""), state=term, restartCount=restarts,
                                                       started=False)
                    self._status()
                    break
                restarts += 1
                delay = backoff(restarts)
                self.log(f"init {c['name']} exited {proc.returncode}; restart {restarts} in {delay}s")
                self.agent.events.append((time.monotonic(), f"{self.ns}/{self.name} init {c['name']} exit {proc.returncode}"))
                last = term
                self.init_status[c["name"]] = self._waiting(c, "CrashLoopBackOff", restarts, last)
                self.init_status[c["name"]]["lastState"] = term
                self._status()
                if self.stop_event.wait(delay):
                    return
        self.initialized = True
        self.t_init_done = time.monotonic()
        self.phase = "Running"
        restarts = {}
        for c in self.spec["containers"]:
            self.main_procs[c["name"]] = self._start(c)
            restarts[c["name"]] = 0
            self.main_status[c["name"]] = self._running(c, self.main_procs[c["name"]])
        self._status()
        self._supervise(restarts)

    def _supervise(self, restarts):
        self.probes = probes = {c["name"]: Prober(self, c) for c in self.spec["containers"]}
        next_sync = time.monotonic() + CONFIGMAP_SYNC_S
        while not self.stop_event.wait(0.2):
            changed = False
            if time.monotonic() >= next_sync:
                self._sync_configmaps()
                next_sync = time.monotonic() + CONFIGMAP_SYNC_S
            for c in self.spec["containers"]:
                n = c["name"]
                proc = self.main_procs[n]
                verdict = probes[n].tick(proc)
                if verdict == "restart":
                    self._kill_for_liveness(c, proc, probes[n])
                if not proc.running():
                    restarts[n] += 1
                    last = self._terminated(proc)
                    delay = backoff(restarts[n])
                    self.log(f"container {n} exited {proc.returncode}; restart {restarts[n]} in {delay}s")
                    self.agent.events.append((time.monotonic(), f"{self.ns}/{self.name} container {n} exit "
                                                                f"{last['terminated']['exitCode']}"))
                    self.ready[n] = False
                    self.main_status[n] = self._waiting(c, "CrashLoopBackOff" if delay else "ContainerCreating",
                                                        restarts[n], last)
                    self._status()
                    if self.stop_event.wait(delay):
                        return
                    self.main_procs[n] = self._start(c)
                    probes[n] = Prober(self, c)
                    self.main_status[n] = self._running(c, self.main_procs[n], restarts[n], last)
                    changed = True
                ready = probes[n].ready
                if ready != bool(self.ready.get(n)):
                    self.ready[n] = ready
                    changed = True
                    if ready and self.t_ready is None and all(self.ready.get(x["name"]) for x in self.spec["containers"]):
                        self.t_ready = time.monotonic()
            if changed or self.status_pending:
                self._status()

    def _kill_for_liveness(self, c, proc, prober):
        """What the kubelet does when a liveness probe has failed failureThreshold times in a row:
        kill the container (its preStop hook first, then SIGTERM, SIGKILL after the probe's
        terminationGracePeriodSeconds, else the pod's), and let the restart policy restart it."""
        grace = prober.lp.get("terminationGracePeriodSeconds", self.spec.get("terminationGracePeriodSeconds", 30))
        self.log(f"container {c['name']}: liveness probe failed {prober.fails['l']} times in a row; killing it "
                 f"(grace {grace} s)")
        deadline = time.monotonic() + grace
        hook = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec")
        if hook and proc.running() and grace > 0:
            r = exec_in(proc, self.pod, c, hook["command"], timeout=max(1.0, deadline - time.monotonic()))
            self.log(f"preStop {hook['command']}: exit {r[0]} {r[1].strip()[:200]}")
        proc.stop(grace=max(0.0, deadline - time.monotonic()))

    # -- ConfigMap volumes updated in place ----------------------------------------------------
    def _sync_configmaps(self):
        """Bring each configMap volume up to date with its ConfigMap, as the kubelet's AtomicWriter
        does: the new payload in a new timestamped directory, a `..data_tmp` symlink to it renamed
        over `..data` (one atomic rename), the user-visible symlinks of new keys created and those
        of removed keys deleted, then the old directory removed. A container's bind mount of the
        volume directory sees the switch at once. A ConfigMap that is gone leaves the volume as it
        is (the kubelet keeps the last content too). subPath mounts are not updated (neither
        does the kubelet)."""
        for v in self.spec.get("volumes", []):
            if "configMap" not in v:
                continue
            src = v["configMap"]
            try:
                files = self._keyed("configmaps", src)
            except (Failure, OSError) as e:
                if v["name"] not in self.cm_unread:  # once until it is read again
                    self.log(f"volume {v['name']}: ConfigMap {src['name']} not read ({e}); volume left as it is")
                self.cm_unread.add(v["name"])
                continue
            self.cm_unread.discard(v["name"])
            path = self.pod.volumes[v["name"]]
            want = {rel: data for rel, data, _ in files}
            if self._payload(path) == want:
                continue
            old = os.readlink(path / "..data")
            ts = self._write_ts_dir(self.pod, path, files, src.get("defaultMode", 0o644))
            os.symlink(ts.name, path / "..data_tmp")
            os.rename(path / "..data_tmp", path / "..data")
            tops = set(dict.fromkeys(rel.split("/")[0] for rel in want))
            for top in tops:
                if not os.path.lexists(path / top):
                    os.symlink(f"..data/{top}", path / top)
            for entry in os.listdir(path):
                if not entry.startswith("..") and entry not in tops:
                    os.unlink(path / entry)
            shutil.rmtree(path / old)
            self.configmap_swaps.append((time.monotonic(), v["name"], old, ts.name))
            self.log(f"volume {v['name']}: ConfigMap {src['name']} changed; ..data {old} -> {ts.name}")

    @staticmethod
    def _payload(path):
        """{relative path: bytes} of what a configMap volume's `..data` holds now."""
        root = path / "..data"
        out = {}
        for d, _, fs in os.walk(root):
            for f in fs:
                full = Path(d) / f
                out[str(full.relative_to(root))] = full.read_bytes()
        return out

    # -- deletion -------------------------------------------------------------------------------
    def _terminate(self):
        grace = self.stop_grace if self.stop_grace is not None else 0
        deadline = time.monotonic() + grace
        if self.pod is not None:
            for c in self.spec["containers"]:
                hook = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec")
                proc = self.main_procs.get(c["name"])
                if hook and proc is not None and proc.running() and grace > 0:
                    r = exec_in(proc, self.pod, c, hook["command"], timeout=max(1.0, deadline - time.monotonic()))
                    self.log(f"preStop {hook['command']}: exit {r[0]} {r[1].strip()[:200]}")
            for p in self.pod.procs:
                p.signal(15)
            for p in self.pod.procs:
                if p.wait(max(0.0, deadline - time.monotonic())) is None:
                    p.kill()
        self.teardown()
        if self.stop_grace is not None and not self.agent.stopping.is_set():
            # The kubelet's final delete: the object goes, the StatefulSet controller re-creates it.
            self.api.delete(self.path, {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                            ok=(200, 404, 409))

    def teardown(self):
        if self.pod is not None:
            for p in self.pod.procs:
                p.kill()
        with self.agent.net_lock:
            if self.netns is not None and self.netns in self.agent.cp.network.pods:
                self.agent.cp.network.remove_pod(self.netns)


def exec_in(proc, pod, c, argv, timeout):
    """Run argv in a running container (its mount, UTS and network namespaces and root), as
    the container's user: what `kubectl exec` and exec probes do. Returns (exit code, output)."""
    uid, gid, groups = pod.ids(c)
    prog = images.IMAGES.get(image_repo(c))
    argv = prog.argv(list(argv)) if prog else list(argv)
    env = pod.container_env(c)
    cmd = ["nsenter", "-t", str(proc.pid), "-m", "-u", "-n", "-r", "-w",
           "-S", str(uid), "-G", str(gid), "--", *argv]
    try:
        r = run(cmd, timeout=timeout, env=env, check_rc=False)
        return r.returncode, r.stdout + r.stderr
    except Exception as e:  # noqa: BLE001 - a timed-out probe is a failed probe
        return -1, str(e)


class Prober:
    """One container's readiness and liveness probes, as the kubelet runs them (periodSeconds,
    initialDelaySeconds, timeoutSeconds, failureThreshold, successThreshold)."""

    def __init__(self, runner: PodRunner, c):
        self.runner, self.c = runner, c
        self.start = time.monotonic()
        if c.get("startupProbe"):
            raise Failure(f"{c['name']}: startupProbe is not done by the test agent")
        self.rp, self.lp = c.get("readinessProbe"), c.get("livenessProbe")
        self.ready = self.rp is None
        self.next = {"r": self._first(self.rp), "l": self._first(self.lp)}
        self.fails = {"r": 0, "l": 0}
        self.oks = {"r": 0, "l": 0}
        self.runs = {"r": [0, 0], "l": [0, 0]}  # [passed, failed] probe runs, for figures
        self.last_out = None

    def _first(self, p):
        return None if p is None else self.start + p.get("initialDelaySeconds", 0)

    def tick(self, proc):
        t = time.monotonic()
        verdict = None
        for k, p in (("r", self.rp), ("l", self.lp)):
            if p is None or t < self.next[k] or not proc.running():
                continue
            self.next[k] = t + p.get("periodSeconds", 10)
            ok = self._probe(p, proc)
            self.runs[k][0 if ok else 1] += 1
            if ok:
                self.oks[k] += 1
                self.fails[k] = 0
            else:
                self.fails[k] += 1
                self.oks[k] = 0
            if k == "r":
                if ok and self.oks[k] >= p.get("successThreshold", 1):
                    self.ready = True
                elif not ok and self.fails[k] >= p.get("failureThreshold", 3):
                    self.ready = False
            elif not ok and self.fails[k] >= p.get("failureThreshold", 3):
                verdict = "restart"
        return verdict

    def _port(self, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in self.c.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise Failure(f"{self.c['name']}: no port named {port}")

    def _probe(self, p, proc):
        timeout = p.get("timeoutSeconds", 1)
        ns = self.runner.agent.cp.network.node  # the kubelet probes from the node's network
        ip = self.runner.ip
        if "exec" in p:
            rc, out = exec_in(proc, self.runner.pod, self.c, p["exec"]["command"], timeout)
            if rc != 0 and out != self.last_out:
                self.runner.log(f"probe {p['exec']['command']} exit {rc}: {out.strip()[:300]}")
            self.last_out = out if rc != 0 else None
            return rc == 0
        if "tcpSocket" in p:
            try:
                ns.connect(ip, self._port(p["tcpSocket"]["port"]), timeout).close()
                return True
            except OSError:
                return False
        if "httpGet" in p:
            g = p["httpGet"]
            try:
                raw = ns.request(ip, self._port(g["port"]),
                                 f"GET {g.get('path', '/')} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode(), timeout)
                code = int(raw.split(" ", 2)[1])
                return 200 <= code < 400
            except (OSError, ValueError, IndexError):
                return False
        raise Failure(f"{self.c['name']}: probe {sorted(p)} is not done by the test agent")


def dump(obj):
    return json.dumps(obj, indent=1, sort_keys=True)
