#!/usr/bin/env python3
"""The shipped templates build valid URLs for IPv4 and IPv6 pods.

    template_urls.py --binary PATH

For every template a shipped kustomize base generates into a ConfigMap, and for an IPv4 and an
IPv6 POD_IP (and a dual-stack POD_IPS), this runs `peerconf check` (every ordinal must render),
then `peerconf render --dry-run` for every ordinal, and parses every `scheme://...` in the result
with Python's urllib.parse: each must have a host and a port that parse, and the host must be the
pod's IP, a member's FQDN or a loopback name/address. An IPv6 address written into a URL without
brackets (`http://fd00::5:2380`) fails here. A negative control proves it: the etcd template as it
was before the `hostport` filter must be caught. Prints one line per check; exits 1 on failure.
"""

import argparse
import atexit
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness.report import FAILURES, bad, ok  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = 3
URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s,\"'<>]+")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# Each case: the pod IPs of ordinal i, as the downward API would give them.
FAMILIES = {
    "IPv4": lambda i: {"POD_IP": f"10.244.1.{10 + i}"},
    "IPv6": lambda i: {"POD_IP": f"fd00:10:244::{10 + i:x}"},
    "dual-stack, IPv6 primary": lambda i: {"POD_IPS": f"fd00:10:244::{10 + i:x},10.244.1.{10 + i}"},
}


# Template -> the `--secret` names its init container passes: given here as a stand-in file
# (`check` reads none; `render --dry-run` prints it redacted).
SECRETS = {}


def secret_args(template):
    args = []
    for name in SECRETS.get(template, []):
        stand_in = Path(tempfile.gettempdir()) / f"peerconf-template-urls-secret-{os.getpid()}"
        if not stand_in.exists():
            stand_in.write_text("template-urls-stand-in")
            atexit.register(stand_in.unlink, missing_ok=True)
        args += ["--secret", f"{name}={stand_in}"]
    return args


def shipped_templates():
    """(template path, StatefulSet name) for every ConfigMap template of every kustomize base: a
    base's one StatefulSet renders its files (a ConfigMap with several files is a directory)."""
    out = []
    for kustomization in sorted(ROOT.glob("manifests/**/kustomization.yaml")):
        base = kustomization.parent
        k = yaml.safe_load(kustomization.read_text())
        sts = None
        for res in k.get("resources", []):
            for doc in yaml.safe_load_all((base / res).read_text()):
                if doc and doc.get("kind") == "StatefulSet":
                    sts = doc["metadata"]["name"]
                    inits = doc["spec"]["template"]["spec"].get("initContainers", [])
                    names = [a.split("=")[1] for c in inits for a in c.get("args", []) if a.startswith("--secret=")]
                    SECRETS[base] = names
        for gen in k.get("configMapGenerator", []):
            files = [base / f for f in gen.get("files", [])]
            if not files:
                continue  # literals only (e.g. etcd's cluster-state switch): no template
            dirs = {f.parent for f in files}
            if len(dirs) > 1:
                raise SystemExit(f"{kustomization}: ConfigMap {gen['name']} spans several directories")
            template = files[0] if len(files) == 1 else dirs.pop()
            for name in SECRETS.get(base, []):
                SECRETS.setdefault(template, []).append(name)
            out.append((template, sts))
    return out


def peerconf(binary, args, env):
    full = {"PATH": os.environ.get("PATH", ""), **env}
    return subprocess.run([binary, *args, "--resolv-conf", "/nonexistent"], env=full, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=30)


def url_problems(text, pod_ips, fqdns):
    problems, urls = [], URL_RE.findall(text)
    for url in urls:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as e:
            problems.append(f"{url!r}: {e}")
            continue
        if host is None or port is None:
            problems.append(f"{url!r}: urllib finds host {host!r}, port {port!r}")
        elif host not in pod_ips and host not in fqdns and host not in LOOPBACK:
            problems.append(f"{url!r}: host {host!r} is neither the pod's IP {pod_ips}, a member nor loopback")
    return urls, problems


def check_template(binary, template, sts):
    where = template.relative_to(ROOT) if template.is_relative_to(ROOT) else template
    caught = False
    for family, ips_of in FAMILIES.items():
        env0 = ips_of(0)
        r = peerconf(binary, ["check", "--template", str(template), "--statefulset", sts,
                              "--replicas", str(REPLICAS), *secret_args(template)], env0)
        if r.returncode != 0:
            bad(f"{where} ({family}): peerconf check exited {r.returncode}: {(r.stdout + r.stderr).strip()[-400:]}")
            caught = True
            continue
        ok(f"{where} ({family} {list(env0.values())[0]}): peerconf check renders all {REPLICAS} ordinals")
        fqdns = {f"{sts}-{i}.{sts}.default.svc.cluster.local" for i in range(REPLICAS)}
        count, failed = 0, []
        for i in range(REPLICAS):
            env = ips_of(i)
            pod_ips = set(",".join(env.values()).split(","))
            r = peerconf(binary, ["render", "--template", str(template), "--pod-name", f"{sts}-{i}",
                                  "--replicas", str(REPLICAS), "--dry-run", *secret_args(template)], env)
            if r.returncode != 0:
                failed.append(f"{sts}-{i}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
                continue
            urls, problems = url_problems(r.stdout, pod_ips, fqdns)
            count += len(urls)
            failed += [f"{sts}-{i}: {p}" for p in problems]
        if failed:
            bad(f"{where} ({family}): {'; '.join(failed[:4])}")
            caught = True
        else:
            ok(f"{where} ({family}): {count} URLs over {REPLICAS} ordinals, urllib.parse finds each host and port")
    return caught


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    opts = ap.parse_args()
    templates = shipped_templates()
    if len(templates) < 3:
        bad(f"expected the Consul, etcd and ZooKeeper templates, found {templates}")
    for template, sts in templates:
        check_template(opts.binary, template, sts)
    # Negative control: the etcd template as shipped before, `http://{{ pod_ip }}:2380`.
    etcd = ROOT / "manifests/examples/etcd/etcd.json"
    old = re.sub(r"\{\{ pod_ip \| hostport\((\d+)\) \}\}", r"{{ pod_ip }}:\1", etcd.read_text())
    if old == etcd.read_text():
        bad("negative control: etcd.json no longer uses `pod_ip | hostport(...)`; update this control")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "etcd.json"
            copy.write_text(old)
            print("      negative control: etcd.json with `http://{{ pod_ip }}:2380` (expect FAILs):")
            before = len(FAILURES)
            caught = check_template(opts.binary, copy, "etcd")
            del FAILURES[before:]
            if caught:
                ok("negative control: an unbracketed IPv6 pod IP in a URL is caught")
            else:
                bad("negative control: `http://{{ pod_ip }}:2380` passed with an IPv6 POD_IP")
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
