"""A real Kubernetes control plane on a network of our own: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and CoreDNS, built from source by tests/k8s/build.sh.

Everything runs in the node side of a `harness.netns.Network` (a network namespace holding the
pod bridge), never in the machine's own network namespace:

    10.<net>.0.1:6443   kube-apiserver (--bind-address and --advertise-address)
    10.<net>.0.10:53    CoreDNS, the cluster DNS every pod's resolv.conf names
    127.0.0.1:2379/2380 etcd, 127.0.0.1:10257/10259 controller-manager/scheduler, 127.0.0.1:8080,
                        8181, 9153 CoreDNS health/ready/metrics: the node namespace's own loopback

Pods (their own namespaces on the bridge) reach the API server and CoreDNS directly: there is no
kube-proxy, so KUBERNETES_SERVICE_HOST is the API server's address on the bridge. The harness
reaches everything through `kubectl()` (run in the node namespace) and `api` (sockets made in
the node namespace). Certificates are made with openssl at start: one CA, the API server's
serving certificate, one client certificate in system:masters used by every component, kubectl
and the node agent (a real cluster gives each its own identity; RBAC is on, so the admin identity
is simply allowed everything), and an RSA key pair for service-account tokens.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import http.client
import time
from pathlib import Path

from harness import Failure, check
from harness.netns import Network
from harness.proc import Supervisor, run, wait_until

# kubeadm's Corefile (cmd/kubeadm/app/phases/addons/dns/manifests.go, 1.31+: kubernetes PR
# #128359 added `disable success/denial` for the cluster domain), with three changes for a
# machine without a network: `bind` on the cluster DNS address; health/ready/prometheus on the
# node namespace's loopback; no `forward . /etc/resolv.conf` and no `loop` (nothing outside the
# cluster domain is ever asked here, and no query may leave the machine).
COREFILE_KUBEADM = """.:53 {{
    bind {ip}
    errors
    health 127.0.0.1:8080 {{
        lameduck 5s
    }}
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus 127.0.0.1:9153
    cache 30 {{
        disable success cluster.local
        disable denial cluster.local
    }}
    reload
    loadbalance
}}
"""
# The same with the plain `cache 30` of older kubeadm releases: cluster.local answers (and
# NXDOMAINs) are cached too, up to the record TTL (kubernetes/kubernetes#92559).
COREFILE_PLAIN = COREFILE_KUBEADM.replace("""    cache 30 {{
        disable success cluster.local
        disable denial cluster.local
    }}
""", "    cache 30\n")
assert COREFILE_PLAIN != COREFILE_KUBEADM
COREFILES = {"kubeadm": COREFILE_KUBEADM, "plain": COREFILE_PLAIN}


def openssl(*args, cwd):
    run(["openssl", *args], timeout=60, env={"PATH": "/usr/bin:/bin", "RANDFILE": str(Path(cwd) / ".rnd")})


class Certs:
    def __init__(self, d: Path, apiserver_ips):
        self.d = d
        d.mkdir(parents=True, exist_ok=True)
        p = lambda n: str(d / n)  # noqa: E731
        self.ca, self.ca_key = p("ca.crt"), p("ca.key")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out", self.ca,
                "-days", "2", "-subj", "/CN=peerconf-test-ca", cwd=d)
        self.apiserver, self.apiserver_key = p("apiserver.crt"), p("apiserver.key")
        sans = ",".join([*(f"IP:{ip}" for ip in apiserver_ips), "DNS:kubernetes", "DNS:kubernetes.default",
                         "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost"])
        self._leaf("apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
        self.admin, self.admin_key = p("admin.crt"), p("admin.key")
        self._leaf("admin", "/O=system:masters/CN=peerconf-test-admin", "extendedKeyUsage=clientAuth\n")
        self.sa_key, self.sa_pub = p("sa.key"), p("sa.pub")
        openssl("genrsa", "-out", self.sa_key, "2048", cwd=d)
        openssl("rsa", "-in", self.sa_key, "-pubout", "-out", self.sa_pub, cwd=d)

    def _leaf(self, name, subj, ext):
        d = self.d
        (d / f"{name}.ext").write_text(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"), "-out",
                str(d / f"{name}.csr"), "-subj", subj, cwd=d)
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", str(d / f"{name}.crt"), "-days", "2", "-extfile", str(d / f"{name}.ext"),
                cwd=d)


class Api:
    """The API server's REST API from the harness, over sockets made in the node namespace, as
    the admin client certificate."""

    def __init__(self, ns, host, port, certs: Certs):
        self.ns, self.host, self.port = ns, host, port
        self.ctx = ssl.create_default_context(cafile=certs.ca)
        self.ctx.load_cert_chain(certs.admin, certs.admin_key)

    def request(self, method, path, body=None, content_type="application/json", timeout=10.0, ok=(200, 201)):
        sock = self.ns.connect(self.host, self.port, timeout)
        tls = self.ctx.wrap_socket(sock, server_hostname=self.host)
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ctx)
        conn.sock = tls
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        if ok and r.status not in ok:
            raise ApiError(r.status, f"{method} {path}: {r.status} {raw[:500].decode(errors='replace')}")
        if not raw:
            return r.status, None
        if "json" in (r.getheader("Content-Type") or ""):
            return r.status, json.loads(raw)
        return r.status, raw.decode(errors="replace")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)[1]

    def maybe_get(self, path):
        status, obj = self.request("GET", path, ok=(200, 404))
        return obj if status == 200 else None

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)[1]

    def patch(self, path, body, kind="merge", **kw):
        ct = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json"}[kind]
        return self.request("PATCH", path, body, content_type=ct, **kw)[1]

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)[1]

    def delete(self, path, body=None, **kw):
        kw.setdefault("ok", (200, 202, 404))
        return self.request("DELETE", path, body, **kw)[1]


class ApiError(Failure):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class ControlPlane:
    API_PORT = 6443

    def __init__(self, sup: Supervisor, workdir: Path, bins: dict, net: int, corefile="kubeadm", prefix="k8s"):
        self.sup = sup
        self.workdir = Path(workdir)
        self.bins = bins  # {"kube": dir, "etcd": dir, "coredns": dir}
        self.dir = self.workdir / "controlplane"
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        self.network = Network(prefix, net, self.workdir / "netns")
        self.node_ns = self.network.node
        self.api_ip = self.network.node.ip  # 10.<net>.0.1
        self.dns_ip = self.network.ip(0, 10)
        self.network.node_address(self.dns_ip)
        self.certs = Certs(self.dir / "pki", [self.api_ip, "10.96.0.1", "127.0.0.1"])
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig())
        os.chmod(self.kubeconfig, 0o600)
        self.api = Api(self.node_ns, self.api_ip, self.API_PORT, self.certs)
        self.corefile_name = corefile
        self.procs = {}
        self.timings = {}

    def _kubeconfig(self):
        c = self.certs
        b64 = lambda p: base64.b64encode(Path(p).read_bytes()).decode()  # noqa: E731
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": f"https://{self.api_ip}:{self.API_PORT}",
                                                       "certificate-authority-data": b64(c.ca)}}],
            "users": [{"name": "admin", "user": {"client-certificate-data": b64(c.admin),
                                                 "client-key-data": b64(c.admin_key)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }, indent=1)

    def _start(self, name, argv):
        self.procs[name] = self.sup.start(name, [*self.node_ns.exec_prefix(), *map(str, argv)])
        return self.procs[name]

    def _alive(self, name):
        p = self.procs[name]
        if not p.running():
            raise Failure(f"{name} exited {p.returncode}:\n{p.tail(25)}")

    def start(self):
        t0 = time.monotonic()
        kube, etcd_dir = Path(self.bins["kube"]), Path(self.bins["etcd"])
        data = self.dir / "etcd-data"
        self._start("etcd", [etcd_dir / "etcd", "--name", "cp", "--data-dir", data,
                             "--listen-client-urls", "http://127.0.0.1:2379",
                             "--advertise-client-urls", "http://127.0.0.1:2379",
                             "--listen-peer-urls", "http://127.0.0.1:2380",
                             "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                             "--initial-cluster", "cp=http://127.0.0.1:2380",
                             "--unsafe-no-fsync", "--log-level", "warn"])
        c = self.certs
        self.apiserver_argv = [
            kube / "kube-apiserver",
            "--etcd-servers=http://127.0.0.1:2379",
            f"--bind-address={self.api_ip}", f"--advertise-address={self.api_ip}",
            f"--secure-port={self.API_PORT}",
            # No Service VIPs are routed here (no kube-proxy); the kubernetes Service keeps no
            # endpoints: pods are given the API server's own address instead.
            "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--tls-cert-file={c.apiserver}", f"--tls-private-key-file={c.apiserver_key}",
            f"--client-ca-file={c.ca}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={c.sa_pub}", f"--service-account-signing-key-file={c.sa_key}",
            "--authorization-mode=Node,RBAC",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            "--profiling=false", "--v=1",
        ]
        self._start("kube-apiserver", self.apiserver_argv)
        self._wait_ready("kube-apiserver", "/readyz", 90)
        self.timings["apiserver_ready_s"] = round(time.monotonic() - t0, 1)
        self._start("kube-controller-manager", [
            kube / "kube-controller-manager", f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1", "--leader-elect=false",
            f"--service-account-private-key-file={c.sa_key}", f"--root-ca-file={c.ca}",
            "--use-service-account-credentials=false", "--controllers=*", "--v=1",
        ])
        self._start("kube-scheduler", [
            kube / "kube-scheduler", f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1", "--leader-elect=false", "--v=1",
        ])
        self.start_coredns(self.corefile_name)
        # The default ServiceAccount of "default" appears once the controller-manager runs.
        ok = wait_until(lambda: self.api.maybe_get("/api/v1/namespaces/default/serviceaccounts/default"), 60, 0.25)
        for n in self.procs:
            self._alive(n)
        check(ok, "the controller-manager made no default ServiceAccount within 60 s")
        self.timings["control_plane_ready_s"] = round(time.monotonic() - t0, 1)

    def stop_apiserver(self):
        """Stop kube-apiserver (SIGTERM, by PID): nothing answers on its address until restart_apiserver."""
        self.procs["kube-apiserver"].stop()

    def restart_apiserver(self, timeout=90):
        """Start kube-apiserver again with the same flags (same certificates, same etcd); the seconds to /readyz."""
        t = time.monotonic()
        self._start("kube-apiserver", self.apiserver_argv)
        self._wait_ready("kube-apiserver", "/readyz", timeout)
        return round(time.monotonic() - t, 1)

    def start_coredns(self, name):
        if "coredns" in self.procs:
            self.procs.pop("coredns").stop()
        self.corefile_name = name
        corefile = self.dir / f"Corefile.{name}"
        corefile.write_text(COREFILES[name].format(ip=self.dns_ip, kubeconfig=self.kubeconfig))
        self._start("coredns", [Path(self.bins["coredns"]) / "coredns", "-conf", corefile])
        # CoreDNS's ready plugin answers 200 once the kubernetes plugin has synced its caches.
        ready = wait_until(lambda: self._http_ok(8181, "/ready"), 60, 0.2)
        self._alive("coredns")
        check(ready, "CoreDNS not ready within 60 s")

    def _http_ok(self, port, path):
        try:
            with self.node_ns.connect("127.0.0.1", port, 1.0) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                return self._status_line(s) == 200
        except OSError:
            return False

    @staticmethod
    def _status_line(s):
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        try:
            return int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return None

    def _wait_ready(self, name, path, timeout):
        def ready():
            self._alive(name)
            self._alive("etcd")
            try:
                status, _ = self.api.request("GET", path, ok=None, timeout=2.0)
                return status == 200
            except (OSError, ssl.SSLError):
                return False
        check(wait_until(ready, timeout, 0.25), f"{name} not ready within {timeout} s:\n{self.procs[name].tail(25)}")

    def kubectl(self, *args, timeout=60, check_rc=True, stdin_file=None):
        argv = [*self.node_ns.exec_prefix(), str(Path(self.bins["kube"]) / "kubectl"),
                f"--kubeconfig={self.kubeconfig}", *map(str, args)]
        return run(argv, timeout=timeout, check_rc=check_rc)

    def stop(self):
        for name in ["coredns", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]:
            if name in self.procs:
                self.procs[name].stop()

    def close(self):
        self.stop()
        self.network.close()


def stop_everything(agent, cp, sup, log) -> bool:
    """Stop the node agent (its pods), the control plane and every process `sup` started, then
    delete the network namespaces; what the suite and healthy.py do last, whatever happened.
    False when the namespaces could not all be deleted (logged)."""
    if agent is not None:
        agent.stop()
    if cp is not None:
        cp.stop()
    sup.stop_all()
    if cp is not None:
        try:
            cp.network.close()
        except Failure as e:
            log(f"cleanup: {e}")
            return False
    return True
